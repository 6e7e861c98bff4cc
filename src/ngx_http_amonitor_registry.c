/*
 * Copyright (C) AMonitor authors
 *
 * The registry of targets learned at run time (register messages,
 * on-demand dials), in the zone whatever the store's backend, so that
 * every worker connects to them.  Entries leave: forgotten when a dial
 * never succeeds, when nobody had them open for amonitor_learned_expire,
 * when the allow patterns no longer allow them, when a register displaces
 * a dial.  Every change is a record of the change log (registry_log.c),
 * which the workers follow.  Adding, finding, forgetting and touching
 * cost the same however many entries there are; expiry reads only what
 * expires.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_registry_log.h"


static ngx_int_t ngx_http_amonitor_registry_add(ngx_http_amonitor_store_t *st,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed,
    ngx_uint_t max_learned);
static ngx_int_t ngx_http_amonitor_registry_add_locked(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t kind, ngx_uint_t max_dialed, ngx_uint_t max_learned);
static ngx_int_t ngx_http_amonitor_registry_insert(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t kind);
static ngx_uint_t ngx_http_amonitor_registry_generation(
    ngx_http_amonitor_store_t *st);
static ngx_int_t ngx_http_amonitor_registry_forget(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t unopened);
static void ngx_http_amonitor_registry_touch(
    ngx_http_amonitor_store_t *st, ngx_str_t *id);
static ngx_uint_t ngx_http_amonitor_registry_expire(
    ngx_http_amonitor_store_t *st, ngx_msec_t ttl);
static ngx_http_amonitor_reg_t *ngx_http_amonitor_registry_find_url(
    ngx_http_amonitor_registry_t *rg, ngx_str_t *url, ngx_uint_t kind);
static void ngx_http_amonitor_registry_seen(
    ngx_http_amonitor_registry_t *rg, ngx_http_amonitor_reg_t *reg);


void
ngx_http_amonitor_registry_methods(ngx_http_amonitor_store_t *st)
{
    st->learn = ngx_http_amonitor_registry_add;
    st->changes = ngx_http_amonitor_registry_changes;
    st->generation = ngx_http_amonitor_registry_generation;
    st->forget = ngx_http_amonitor_registry_forget;
    st->touch = ngx_http_amonitor_registry_touch;
    st->expire = ngx_http_amonitor_registry_expire;
}


/*
 * A new zone: the indexes get a bucket per 2 KB of it (a power of two,
 * at least 64), about one entry a bucket when the entries fill half of
 * it.  Their size stays for the zone's life: reloads keep it.
 */
ngx_int_t
ngx_http_amonitor_registry_init(
    ngx_http_amonitor_registry_t *rg, ngx_slab_pool_t *shpool, size_t size)
{
    ngx_uint_t n;

    for (n = 64; n < size / 2048; n <<= 1) { /* void */
    }

    rg->by_id = ngx_slab_calloc(shpool, 2 * n * sizeof(void *));
    if (rg->by_id == NULL) {
        return NGX_ERROR;
    }

    rg->by_url = rg->by_id + n;
    rg->mask = n - 1;
    ngx_queue_init(&rg->dialed);
    ngx_queue_init(&rg->registered);

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_registry_add(ngx_http_amonitor_store_t *st, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed,
    ngx_uint_t max_learned)
{
    ngx_int_t        rc;
    ngx_slab_pool_t *shpool;

    if (id->len > NGX_HTTP_AMONITOR_REG_ID_MAX
        || url->len > NGX_HTTP_AMONITOR_REG_URL_MAX) {
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    rc = ngx_http_amonitor_registry_add_locked(
        st, id, url, kind, max_dialed, max_learned);
    ngx_shmtx_unlock(&shpool->mutex);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
            "amonitor: no memory in amonitor zone \"%V\" for the learned "
            "target \"%V\"",
            &st->zone->shm.name, id);
    }

    return rc;
}


/*
 * The precedence: configured targets never get here (the workers find
 * them first), a register displaces an on-demand dial of the same id or
 * URL and may take the place of the oldest dial when the registry is
 * full (amonitor_learned_limit); a dial never displaces anything.
 */
static ngx_int_t
ngx_http_amonitor_registry_add_locked(ngx_http_amonitor_store_t *st,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed,
    ngx_uint_t max_learned)
{
    ngx_queue_t                  *q;
    ngx_http_amonitor_reg_t      *reg;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    reg = ngx_http_amonitor_registry_find(rg, id);

    if (reg != NULL) {
        if (ngx_memn2cmp(ngx_http_amonitor_reg_url(reg), url->data,
                reg->url_len, url->len)
            == 0) {
            if (kind > reg->kind) {
                reg->kind = kind;
                rg->ndialed--;
                ngx_queue_remove(&reg->queue);
                ngx_queue_insert_tail(&rg->registered, &reg->queue);
                ngx_http_amonitor_registry_record(st, reg);
            }

            ngx_http_amonitor_registry_seen(rg, reg);
            return NGX_OK;
        }

        if (kind == NGX_HTTP_AMONITOR_DIALED
            || reg->kind == NGX_HTTP_AMONITOR_REGISTERED) {
            return NGX_ABORT;
        }

        /* a register takes its id back from a dial */
        ngx_http_amonitor_registry_remove(st, reg);
    }

    if (kind == NGX_HTTP_AMONITOR_REGISTERED) {
        /* and its URL: a dial named otherwise goes */
        reg = ngx_http_amonitor_registry_find_url(
            rg, url, NGX_HTTP_AMONITOR_DIALED);
        if (reg != NULL) {
            ngx_http_amonitor_registry_remove(st, reg);
        }
    }

    if (kind == NGX_HTTP_AMONITOR_DIALED && rg->ndialed >= max_dialed) {
        return NGX_BUSY;
    }

    if (rg->n >= max_learned && kind == NGX_HTTP_AMONITOR_REGISTERED
        && !ngx_queue_empty(&rg->dialed)) {
        /* the oldest dial makes room */
        q = ngx_queue_head(&rg->dialed);
        reg = ngx_queue_data(q, ngx_http_amonitor_reg_t, queue);
        ngx_http_amonitor_registry_remove(st, reg);
    }

    if (rg->n >= max_learned) {
        (void) ngx_atomic_fetch_add(&rg->refused, 1);
        return NGX_DECLINED;
    }

    return ngx_http_amonitor_registry_insert(st, id, url, kind);
}


/* under the mutex: a new entry, sized to its id and URL */
static ngx_int_t
ngx_http_amonitor_registry_insert(ngx_http_amonitor_store_t *st, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t kind)
{
    size_t                        size;
    ngx_uint_t                    b;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    size = offsetof(ngx_http_amonitor_reg_t, data) + id->len + url->len;

    reg = st->zone_alloc ? st->zone_alloc(st, size)
                         : ngx_slab_alloc_locked(shpool, size);

    if (reg == NULL) {
        (void) ngx_atomic_fetch_add(&rg->refused, 1);
        return NGX_ERROR;
    }

    reg->refs = 0;
    reg->id_len = (u_short) id->len;
    reg->url_len = (u_short) url->len;
    reg->kind = (u_char) kind;
    reg->opened = 0;
    reg->live = 1;
    reg->id_hash = ngx_http_amonitor_hash(id->data, id->len);
    reg->url_hash = ngx_http_amonitor_hash(url->data, url->len);
    ngx_memcpy(reg->data, id->data, id->len);
    ngx_memcpy(reg->data + id->len, url->data, url->len);

    b = reg->id_hash & rg->mask;
    reg->id_next = rg->by_id[b];
    rg->by_id[b] = reg;

    b = reg->url_hash & rg->mask;
    reg->url_next = rg->by_url[b];
    rg->by_url[b] = reg;

    reg->seen = ngx_http_amonitor_registry_now();
    ngx_queue_insert_tail(
        kind == NGX_HTTP_AMONITOR_DIALED ? &rg->dialed : &rg->registered,
        &reg->queue);

    rg->n++;
    rg->ndialed += (kind == NGX_HTTP_AMONITOR_DIALED);

    ngx_http_amonitor_registry_record(st, reg);

    return NGX_OK;
}


/*
 * The number of records written: a worker that read up to it has seen
 * the registry as it is.  Read without the mutex, as a hint: the
 * records are read under it ("changes").
 */
static ngx_uint_t
ngx_http_amonitor_registry_generation(ngx_http_amonitor_store_t *st)
{
    return st->registry->seq;
}


static ngx_int_t
ngx_http_amonitor_registry_forget(ngx_http_amonitor_store_t *st, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t unopened)
{
    ngx_int_t                rc;
    ngx_slab_pool_t         *shpool;
    ngx_http_amonitor_reg_t *reg;

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    rc = NGX_OK;
    reg = ngx_http_amonitor_registry_find(st->registry, id);

    if (reg != NULL
        && (url == NULL
            || ngx_memn2cmp(ngx_http_amonitor_reg_url(reg), url->data,
                   reg->url_len, url->len)
                == 0)) {
        if (unopened && reg->opened) {
            /* another worker has it, or had it: not this one's to drop */
            rc = NGX_DECLINED;

        } else {
            ngx_http_amonitor_registry_remove(st, reg);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/* a worker has it open now: it is not gone */
static void
ngx_http_amonitor_registry_touch(ngx_http_amonitor_store_t *st, ngx_str_t *id)
{
    ngx_slab_pool_t         *shpool;
    ngx_http_amonitor_reg_t *reg;

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    reg = ngx_http_amonitor_registry_find(st->registry, id);
    if (reg != NULL) {
        ngx_http_amonitor_registry_seen(st->registry, reg);
        reg->opened = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * Each queue is in the order of last-seen times (a touch moves an entry
 * to its tail; the workers' clocks differ by a few milliseconds at most),
 * so only what expires and one entry that does not are read.
 */
static ngx_uint_t
ngx_http_amonitor_registry_expire(ngx_http_amonitor_store_t *st, ngx_msec_t ttl)
{
    uint64_t                      now;
    ngx_uint_t                    n, k;
    ngx_queue_t                  *queue, *q;
    ngx_slab_pool_t              *shpool;
    ngx_http_amonitor_reg_t      *reg;
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

    for (k = 0; k < 2; k++) {
        queue = k ? &rg->registered : &rg->dialed;

        while (!ngx_queue_empty(queue)) {
            q = ngx_queue_head(queue);
            reg = ngx_queue_data(q, ngx_http_amonitor_reg_t, queue);

            if (now <= reg->seen + ttl) {
                break;
            }

            ngx_http_amonitor_registry_remove(st, reg);
            n++;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


/*
 * Under the mutex: out of the indexes and its queue; the memory goes
 * when the change log no longer names it (registry_log.c).
 */
void
ngx_http_amonitor_registry_remove(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_reg_t *reg)
{
    ngx_http_amonitor_reg_t     **pp;
    ngx_http_amonitor_registry_t *rg;

    rg = st->registry;

    for (pp = &rg->by_id[reg->id_hash & rg->mask]; *pp != reg;
         pp = &(*pp)->id_next) { /* void */
    }

    *pp = reg->id_next;

    for (pp = &rg->by_url[reg->url_hash & rg->mask]; *pp != reg;
         pp = &(*pp)->url_next) { /* void */
    }

    *pp = reg->url_next;

    ngx_queue_remove(&reg->queue);
    reg->live = 0;
    rg->n--;
    rg->ndialed -= (reg->kind == NGX_HTTP_AMONITOR_DIALED);

    ngx_http_amonitor_registry_record(st, reg);
}


/* an entry of "kind" at "url" (of several, any) */
static ngx_http_amonitor_reg_t *
ngx_http_amonitor_registry_find_url(
    ngx_http_amonitor_registry_t *rg, ngx_str_t *url, ngx_uint_t kind)
{
    uint32_t                 hash;
    ngx_http_amonitor_reg_t *reg;

    hash = ngx_http_amonitor_hash(url->data, url->len);

    for (reg = rg->by_url[hash & rg->mask]; reg; reg = reg->url_next) {
        if (reg->url_hash == hash && reg->kind == kind
            && ngx_memn2cmp(ngx_http_amonitor_reg_url(reg), url->data,
                   reg->url_len, url->len)
                == 0) {
            return reg;
        }
    }

    return NULL;
}


/* seen now: the newest of its queue */
static void
ngx_http_amonitor_registry_seen(
    ngx_http_amonitor_registry_t *rg, ngx_http_amonitor_reg_t *reg)
{
    reg->seen = ngx_http_amonitor_registry_now();

    ngx_queue_remove(&reg->queue);
    ngx_queue_insert_tail(
        reg->kind == NGX_HTTP_AMONITOR_DIALED ? &rg->dialed : &rg->registered,
        &reg->queue);
}
