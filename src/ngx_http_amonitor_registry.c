/*
 * Copyright (C) AMonitor authors
 *
 * The registry of targets learned at run time (register messages,
 * on-demand dials), in the zone whatever the store's backend, so that
 * every worker connects to them.  Entries leave: forgotten when a dial
 * never succeeds, when nobody had them open for amonitor_learned_expire,
 * when the allow patterns no longer allow them, when a register displaces
 * a dial.  The generation counter tells workers to reconcile.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


static ngx_int_t ngx_http_amonitor_registry_add(ngx_http_amonitor_store_t *st,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed);
static ngx_int_t ngx_http_amonitor_registry_add_locked(
    ngx_http_amonitor_registry_t *rg, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t kind, ngx_uint_t max_dialed);
static ngx_uint_t ngx_http_amonitor_registry_snapshot(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_reg_t *out,
    ngx_uint_t *gen);
static ngx_uint_t ngx_http_amonitor_registry_generation(
    ngx_http_amonitor_store_t *st);
static ngx_int_t ngx_http_amonitor_registry_forget(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t unopened);
static void ngx_http_amonitor_registry_touch(
    ngx_http_amonitor_store_t *st, ngx_str_t *id);
static ngx_uint_t ngx_http_amonitor_registry_expire(
    ngx_http_amonitor_store_t *st, ngx_msec_t ttl);
static void ngx_http_amonitor_registry_remove(
    ngx_http_amonitor_registry_t *rg, ngx_uint_t i);
static ngx_http_amonitor_reg_t *ngx_http_amonitor_registry_find(
    ngx_http_amonitor_registry_t *rg, u_char *data, size_t len, ngx_uint_t url);


#define ngx_http_amonitor_registry_now() \
    ((uint64_t) ngx_cached_time->sec * 1000 + ngx_cached_time->msec)


void
ngx_http_amonitor_registry_methods(ngx_http_amonitor_store_t *st)
{
    st->learn = ngx_http_amonitor_registry_add;
    st->learned = ngx_http_amonitor_registry_snapshot;
    st->generation = ngx_http_amonitor_registry_generation;
    st->forget = ngx_http_amonitor_registry_forget;
    st->touch = ngx_http_amonitor_registry_touch;
    st->expire = ngx_http_amonitor_registry_expire;
}


static ngx_int_t
ngx_http_amonitor_registry_add(ngx_http_amonitor_store_t *st, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed)
{
    ngx_int_t                     rc;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg;
    ngx_http_amonitor_registry_t *rg;

    if (id->len > sizeof(reg->id) || url->len > sizeof(reg->url)) {
        return NGX_DECLINED;
    }

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    rc = ngx_http_amonitor_registry_add_locked(rg, id, url, kind, max_dialed);
    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * The precedence: configured targets never get here (the workers find
 * them first), a register displaces an on-demand dial of the same id or
 * URL and may take the place of the oldest dial when the registry is
 * full; a dial never displaces anything.
 */
static ngx_int_t
ngx_http_amonitor_registry_add_locked(ngx_http_amonitor_registry_t *rg,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed)
{
    ngx_uint_t               i, dialed, oldest;
    ngx_http_amonitor_reg_t *reg;

    reg = ngx_http_amonitor_registry_find(rg, id->data, id->len, 0);

    if (reg != NULL) {
        if (ngx_memn2cmp(reg->url, url->data, reg->url_len, url->len) == 0) {
            if (kind > reg->kind) {
                reg->kind = kind;
                rg->gen++;
            }

            reg->seen = ngx_http_amonitor_registry_now();
            return NGX_OK;
        }

        if (kind == NGX_HTTP_AMONITOR_DIALED
            || reg->kind == NGX_HTTP_AMONITOR_REGISTERED) {
            return NGX_ABORT;
        }

        /* a register takes its id back from a dial */
        ngx_http_amonitor_registry_remove(rg, reg - rg->reg);
    }

    if (kind == NGX_HTTP_AMONITOR_REGISTERED) {
        /* and its URL: a dial named otherwise goes */
        reg = ngx_http_amonitor_registry_find(rg, url->data, url->len, 1);
        if (reg != NULL && reg->kind == NGX_HTTP_AMONITOR_DIALED) {
            ngx_http_amonitor_registry_remove(rg, reg - rg->reg);
        }
    }

    dialed = 0;
    oldest = rg->n;

    for (i = 0; i < rg->n; i++) {
        if (rg->reg[i].kind == NGX_HTTP_AMONITOR_DIALED) {
            dialed++;

            if (oldest == rg->n || rg->reg[i].seen < rg->reg[oldest].seen) {
                oldest = i;
            }
        }
    }

    if (kind == NGX_HTTP_AMONITOR_DIALED && dialed >= max_dialed) {
        return NGX_BUSY;
    }

    if (rg->n == NGX_HTTP_AMONITOR_MAX_DYNAMIC) {
        if (kind != NGX_HTTP_AMONITOR_REGISTERED || oldest == rg->n) {
            return NGX_DECLINED;
        }

        ngx_http_amonitor_registry_remove(rg, oldest);
    }

    reg = &rg->reg[rg->n++];
    ngx_memzero(reg, offsetof(ngx_http_amonitor_reg_t, id));
    reg->id_len = id->len;
    reg->url_len = url->len;
    reg->kind = kind;
    reg->seen = ngx_http_amonitor_registry_now();
    ngx_memcpy(reg->id, id->data, id->len);
    ngx_memcpy(reg->url, url->data, url->len);

    rg->gen++;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_amonitor_registry_snapshot(ngx_http_amonitor_store_t *st,
    ngx_http_amonitor_reg_t *out, ngx_uint_t *gen)
{
    ngx_uint_t                    n;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    if (*gen == rg->gen) {
        return 0;
    }

    ngx_shmtx_lock(&shpool->mutex);

    n = rg->n;
    ngx_memcpy(out, rg->reg, n * sizeof(ngx_http_amonitor_reg_t));
    *gen = rg->gen;

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/*
 * Every change moves the counter, so a worker that saw this value has
 * seen the registry as it is; read without the mutex, as a hint: the
 * copy ("learned") is made under it.
 */
static ngx_uint_t
ngx_http_amonitor_registry_generation(ngx_http_amonitor_store_t *st)
{
    return st->registry->gen;
}


static ngx_int_t
ngx_http_amonitor_registry_forget(ngx_http_amonitor_store_t *st, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t unopened)
{
    ngx_int_t                     rc;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    rc = NGX_OK;
    reg = ngx_http_amonitor_registry_find(rg, id->data, id->len, 0);

    if (reg != NULL
        && (url == NULL
            || ngx_memn2cmp(reg->url, url->data, reg->url_len, url->len)
                == 0)) {
        if (unopened && reg->opened) {
            /* another worker has it, or had it: not this one's to drop */
            rc = NGX_DECLINED;

        } else {
            ngx_http_amonitor_registry_remove(rg, reg - rg->reg);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/* a worker has it open now: it is not gone */
static void
ngx_http_amonitor_registry_touch(ngx_http_amonitor_store_t *st, ngx_str_t *id)
{
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    reg = ngx_http_amonitor_registry_find(rg, id->data, id->len, 0);
    if (reg != NULL) {
        reg->seen = ngx_http_amonitor_registry_now();
        reg->opened = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_uint_t
ngx_http_amonitor_registry_expire(ngx_http_amonitor_store_t *st, ngx_msec_t ttl)
{
    uint64_t                      now;
    ngx_uint_t                    i, n;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;

    if (rg->n == 0) {
        /* nothing to expire; an entry added meanwhile is new anyway */
        return 0;
    }

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    now = ngx_http_amonitor_registry_now();
    n = 0;

    ngx_shmtx_lock(&shpool->mutex);

    i = 0;
    while (i < rg->n) {
        if (now > rg->reg[i].seen + ttl) {
            ngx_http_amonitor_registry_remove(rg, i);
            n++;
            continue;
        }

        i++;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/* under the mutex: the last entry takes the place of entry "i" */
static void
ngx_http_amonitor_registry_remove(
    ngx_http_amonitor_registry_t *rg, ngx_uint_t i)
{
    rg->n--;

    if (i != rg->n) {
        ngx_memcpy(
            &rg->reg[i], &rg->reg[rg->n], sizeof(ngx_http_amonitor_reg_t));
    }

    rg->gen++;
}


static ngx_http_amonitor_reg_t *
ngx_http_amonitor_registry_find(
    ngx_http_amonitor_registry_t *rg, u_char *data, size_t len, ngx_uint_t url)
{
    ngx_uint_t               i;
    ngx_http_amonitor_reg_t *reg;

    for (i = 0; i < rg->n; i++) {
        reg = &rg->reg[i];

        if (url ? ngx_memn2cmp(reg->url, data, reg->url_len, len) == 0
                : ngx_memn2cmp(reg->id, data, reg->id_len, len) == 0) {
            return reg;
        }
    }

    return NULL;
}
