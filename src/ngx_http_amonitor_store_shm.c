/*
 * Copyright (C) AMonitor authors
 *
 * The shared memory zone: the dedupe table (open addressing keyed by
 * the hash of the msg_id, LRU queue, expiry in the node), the registry of
 * learned targets and the counters.  Shared by all workers; survives
 * reload.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


#define NGX_HTTP_AMONITOR_NODE_MIN 256
/* the layout's version: bump it when the zone's structures change */
#define NGX_HTTP_AMONITOR_ZONE_MAGIC 0x414d4f4e000cULL


typedef struct ngx_http_amonitor_node_s ngx_http_amonitor_node_t;

struct ngx_http_amonitor_node_s {
    ngx_queue_t queue; /* in the LRU */
    ngx_msec_t  expire;
    uint32_t    hash; /* hash of the msg_id */
    u_char      state;
    u_short     id_len;
    u_short     result_len;
    u_short     room; /* bytes for a result after the id */
    u_char      data[1]; /* id, then result */
};


/*
 * The index: open addressing with linear probing, two slots per
 * NGX_HTTP_AMONITOR_NODE_MIN bytes of the zone (a power of two, at most
 * half full).  A slot holds the node's hash (keyed: no one can make runs
 * of ids collide) and offset: a new msg_id is told absent from one cache
 * line of slots without reading any node, and an evicted node is unlinked
 * without walking a chain (an rbtree of a million entries costs twenty
 * nodes, each a likely cache miss).
 */
#define ngx_http_amonitor_slot(hash, off) \
    (((uint64_t) (hash) << 32) | (uint64_t) ((off) >> 3))
#define ngx_http_amonitor_slot_hash(s) ((uint32_t) ((s) >> 32))
#define ngx_http_amonitor_slot_node(shpool, s) \
    ((ngx_http_amonitor_node_t *) ((u_char *) (shpool) \
        + (((s) &0xffffffff) << 3)))

typedef struct {
    /* first: the slab gives the context page-aligned, the slots lines */
    ngx_http_amonitor_counter_slot_t counters[NGX_HTTP_AMONITOR_COUNTER_SLOTS];
    uint64_t                         magic;
    uint64_t                        *slots;
    ngx_uint_t                       mask; /* slots - 1 */
    ngx_queue_t                      lru;
    ngx_http_amonitor_registry_t     registry; /* registry.c */
    ngx_http_amonitor_shared_t       shared; /* target state, histogram */
} ngx_http_amonitor_shctx_t;


typedef struct {
    ngx_http_amonitor_shctx_t *sh;
    ngx_slab_pool_t           *shpool;
    ngx_msec_t                 ttl;
    ngx_msec_t                 hold; /* a claim's life, at least */
    ngx_http_amonitor_store_t  store;
    ngx_log_t                 *log;
    ngx_msec_t                 evict_logged; /* when, 0: never */
    ngx_uint_t                 evict_unlogged; /* evictions since */
} ngx_http_amonitor_shm_t;


/* a full zone is said once, then summed up at most once a minute */
#define NGX_HTTP_AMONITOR_EVICT_LOG_EVERY 60000


static ngx_uint_t ngx_http_amonitor_shm_resized(ngx_shm_zone_t *shm_zone);
static ngx_http_amonitor_node_t *ngx_http_amonitor_shm_lookup(
    ngx_http_amonitor_shm_t *ctx, ngx_str_t *id, uint32_t hash);
static void ngx_http_amonitor_shm_expire(
    ngx_http_amonitor_shm_t *ctx, ngx_uint_t force);
static void ngx_http_amonitor_shm_delete(
    ngx_http_amonitor_shm_t *ctx, ngx_http_amonitor_node_t *an);
static ngx_http_amonitor_node_t *ngx_http_amonitor_shm_alloc(
    ngx_http_amonitor_shm_t *ctx, size_t size, ngx_uint_t *evicted);
static ngx_int_t ngx_http_amonitor_shm_claim(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_http_amonitor_claim_e *state,
    ngx_str_t *result, ngx_http_amonitor_claim_pt handler, void *data);
static void      ngx_http_amonitor_shm_finish(ngx_http_amonitor_store_t *st,
         ngx_str_t *msg_id, uint32_t hash, ngx_http_amonitor_claim_e state,
         ngx_str_t *result);
static ngx_int_t ngx_http_amonitor_shm_query(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data);
static void      ngx_http_amonitor_shm_release(
         ngx_http_amonitor_store_t *st, ngx_str_t *msg_id);
static void ngx_http_amonitor_shm_prefetch(
    ngx_http_amonitor_store_t *st, uint32_t hash, ngx_uint_t claim, void *hint);
static ngx_http_amonitor_node_t *ngx_http_amonitor_shm_add(
    ngx_http_amonitor_shm_t *ctx, ngx_str_t *msg_id, uint32_t hash,
    ngx_uint_t state, ngx_str_t *result, ngx_msec_t expire,
    ngx_uint_t *evicted);
static void ngx_http_amonitor_shm_evicted(
    ngx_http_amonitor_shm_t *ctx, ngx_uint_t n);
static void *ngx_http_amonitor_shm_zone_alloc(
    ngx_http_amonitor_store_t *st, size_t size);
static void ngx_http_amonitor_shm_report(ngx_http_amonitor_shm_t *ctx,
    ngx_str_t *msg_id, ngx_uint_t evicted, ngx_uint_t failed);


#define ngx_http_amonitor_node_size(len) \
    (offsetof(ngx_http_amonitor_node_t, data) + (len))


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


ngx_http_amonitor_store_t *
ngx_http_amonitor_store_shm_create(
    ngx_shm_zone_t *shm_zone, ngx_pool_t *pool, ngx_msec_t ttl, ngx_msec_t hold)
{
    ngx_http_amonitor_shm_t *ctx;

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_amonitor_shm_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->sh = shm_zone->data;
    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    ctx->ttl = ttl;
    ctx->hold = ngx_max(ttl, hold);
    ctx->log = pool->log;

    ctx->store.claim = ngx_http_amonitor_shm_claim;
    ctx->store.finish = ngx_http_amonitor_shm_finish;
    ctx->store.release = ngx_http_amonitor_shm_release;
    ctx->store.prefetch = ngx_http_amonitor_shm_prefetch;
    ctx->store.query = ngx_http_amonitor_shm_query;
    ngx_http_amonitor_registry_methods(&ctx->store);
    ctx->store.zone_alloc = ngx_http_amonitor_shm_zone_alloc;
    ctx->store.zone = shm_zone;
    ctx->store.registry = &ctx->sh->registry;
    ctx->store.data = ctx;

    return &ctx->store;
}


static ngx_http_amonitor_node_t *
ngx_http_amonitor_shm_lookup(
    ngx_http_amonitor_shm_t *ctx, ngx_str_t *id, uint32_t hash)
{
    uint64_t                  s;
    ngx_uint_t                i, mask;
    ngx_http_amonitor_node_t *an;

    mask = ctx->sh->mask;

    for (i = hash & mask; (s = ctx->sh->slots[i]) != 0; i = (i + 1) & mask) {
        if (ngx_http_amonitor_slot_hash(s) != hash) {
            continue;
        }

        an = ngx_http_amonitor_slot_node(ctx->shpool, s);

        if (ngx_memn2cmp(id->data, an->data, id->len, (size_t) an->id_len)
            == 0) {
            return an;
        }
    }

    return NULL;
}


/*
 * Unlink "an" from the index: later slots of its run that may live in the
 * freed slot move back into it (linear probing's deletion), so that no
 * lookup stops early at a hole.
 */
static void
ngx_http_amonitor_shm_delete(
    ngx_http_amonitor_shm_t *ctx, ngx_http_amonitor_node_t *an)
{
    uint64_t  *slots, me;
    ngx_uint_t i, j, home, mask;

    ngx_queue_remove(&an->queue);

    slots = ctx->sh->slots;
    mask = ctx->sh->mask;
    me = ngx_http_amonitor_slot(
        an->hash, (u_char *) an - (u_char *) ctx->shpool);

    for (i = an->hash & mask; slots[i] != me; i = (i + 1) & mask) {
        if (slots[i] == 0) {
            /* not indexed: cannot happen */
            ngx_slab_free_locked(ctx->shpool, an);
            return;
        }
    }

    for (j = (i + 1) & mask; slots[j] != 0; j = (j + 1) & mask) {
        home = ngx_http_amonitor_slot_hash(slots[j]) & mask;

        /* it stays when its home is cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
            continue;
        }

        slots[i] = slots[j];
        i = j;
    }

    slots[i] = 0;

    ngx_slab_free_locked(ctx->shpool, an);
}


/* drop expired entries from the LRU tail; "force" evicts one live entry */
static void
ngx_http_amonitor_shm_expire(ngx_http_amonitor_shm_t *ctx, ngx_uint_t force)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_msec_int_t            ms;
    ngx_http_amonitor_node_t *an;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&ctx->sh->lru)) {
            return;
        }

        q = ngx_queue_last(&ctx->sh->lru);
        an = ngx_queue_data(q, ngx_http_amonitor_node_t, queue);

        ms = (ngx_msec_int_t) (an->expire - ngx_current_msec);

        if (ms > 0) {
            if (!force) {
                return;
            }

            force = 0;
        }

        ngx_http_amonitor_shm_delete(ctx, an);
    }
}


static ngx_http_amonitor_node_t *
ngx_http_amonitor_shm_alloc(
    ngx_http_amonitor_shm_t *ctx, size_t size, ngx_uint_t *evicted)
{
    ngx_uint_t                i;
    ngx_http_amonitor_node_t *an;

    ngx_http_amonitor_shm_expire(ctx, 0);

    /*
     * Slab pages hold one size class: freeing a node of another class may
     * free no page, so evict until a whole page comes free, up to a bound.
     */
    for (i = 0; i < 1024; i++) {
        an = ngx_slab_alloc_locked(ctx->shpool, size);
        if (an != NULL) {
            return an;
        }

        if (ngx_queue_empty(&ctx->sh->lru)) {
            break;
        }

        /* full: evict the least recently used entry, live or not */
        ngx_http_amonitor_shm_expire(ctx, 1);
        (*evicted)++;
    }

    return NULL;
}


/*
 * The registry's entries (registry.c), under the mutex: a zone the dedupe
 * table filled gives its least recently used entries up for them, counted
 * as evictions (logged with the next ones a claim makes).
 */
static void *
ngx_http_amonitor_shm_zone_alloc(ngx_http_amonitor_store_t *st, size_t size)
{
    void                    *p;
    ngx_uint_t               evicted;
    ngx_http_amonitor_shm_t *ctx;

    ctx = st->data;
    evicted = 0;

    p = ngx_http_amonitor_shm_alloc(ctx, size, &evicted);

    if (evicted) {
        ngx_http_amonitor_shm_evicted(ctx, evicted);
    }

    return p;
}


/* a new node for "msg_id" at the LRU head; called under the mutex */
static ngx_http_amonitor_node_t *
ngx_http_amonitor_shm_add(ngx_http_amonitor_shm_t *ctx, ngx_str_t *msg_id,
    uint32_t hash, ngx_uint_t state, ngx_str_t *result, ngx_msec_t expire,
    ngx_uint_t *evicted)
{
    size_t                    rlen, size, cap;
    ngx_uint_t                i, mask;
    ngx_http_amonitor_node_t *an;

    rlen = result ? result->len : 0;

    /*
     * The slab rounds small sizes up to a power of two anyway: ask for at
     * least NGX_HTTP_AMONITOR_NODE_MIN, so that the ack result of a
     * pending claim usually fits in place later (no tree update).
     */
    size = ngx_http_amonitor_node_size(msg_id->len + rlen);
    cap = NGX_HTTP_AMONITOR_NODE_MIN;

    while (cap < size) {
        cap <<= 1;
    }

    if (cap > ngx_pagesize / 2) {
        cap = size;
    }

    an = ngx_http_amonitor_shm_alloc(ctx, cap, evicted);
    if (an == NULL) {
        return NULL;
    }

    an->room = (u_short) (cap - ngx_http_amonitor_node_size(msg_id->len));

    an->hash = hash;
    an->state = (u_char) state;
    an->id_len = (u_short) msg_id->len;
    an->result_len = (u_short) rlen;
    an->expire = expire;
    ngx_memcpy(an->data, msg_id->data, msg_id->len);

    if (rlen) {
        ngx_memcpy(an->data + msg_id->len, result->data, rlen);
    }

    mask = ctx->sh->mask;

    for (i = hash & mask; ctx->sh->slots[i] != 0; i = (i + 1) & mask) {
        /* void: at most half full */
    }

    ctx->sh->slots[i] =
        ngx_http_amonitor_slot(hash, (u_char *) an - (u_char *) ctx->shpool);

    ngx_queue_insert_head(&ctx->sh->lru, &an->queue);

    return an;
}


/* counted at once, logged later (outside the mutex) */
static void
ngx_http_amonitor_shm_evicted(ngx_http_amonitor_shm_t *ctx, ngx_uint_t n)
{
    (void) ngx_atomic_fetch_add(
        &ctx->sh->counters[ngx_worker % NGX_HTTP_AMONITOR_COUNTER_SLOTS]
             .c.evictions,
        n);
    ctx->evict_unlogged += n;
}


/*
 * What an update did to the zone, logged outside the mutex; evictions:
 * the first at once, then a sum at most once a minute.
 */
static void
ngx_http_amonitor_shm_report(ngx_http_amonitor_shm_t *ctx, ngx_str_t *msg_id,
    ngx_uint_t evicted, ngx_uint_t failed)
{
    ngx_msec_t since;

    if (failed) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
            "amonitor zone is full even after eviction; "
            "msg_id \"%V\" not recorded",
            msg_id);
    }

    if (evicted == 0) {
        return;
    }

    ngx_http_amonitor_shm_evicted(ctx, evicted);

    since = ngx_current_msec - ctx->evict_logged;

    if (ctx->evict_logged == 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
            "amonitor zone is full: evicted %ui live dedupe entries; "
            "increase the zone size (further evictions are summed up "
            "once a minute)",
            ctx->evict_unlogged);

    } else if (since < NGX_HTTP_AMONITOR_EVICT_LOG_EVERY) {
        return;

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
            "amonitor zone is full: evicted %ui live dedupe entries "
            "in the last %M s; increase the zone size",
            ctx->evict_unlogged, since / 1000);
    }

    ctx->evict_logged = ngx_current_msec ? ngx_current_msec : 1;
    ctx->evict_unlogged = 0;
}


static ngx_int_t
ngx_http_amonitor_shm_claim(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    uint32_t hash, ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data)
{
    ngx_http_amonitor_shm_t *ctx = st->data;

    ngx_uint_t                evicted;
    ngx_http_amonitor_node_t *an, *added;

    evicted = 0;
    added = NULL;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    an = ngx_http_amonitor_shm_lookup(ctx, msg_id, hash);

    if (an != NULL && (ngx_msec_int_t) (an->expire - ngx_current_msec) <= 0) {
        ngx_http_amonitor_shm_delete(ctx, an);
        an = NULL;
    }

    if (an != NULL) {
        ngx_queue_remove(&an->queue);
        ngx_queue_insert_head(&ctx->sh->lru, &an->queue);

        *state = an->state;
        result->len = an->result_len;
        ngx_memcpy(result->data, an->data + an->id_len, an->result_len);

    } else {
        added = ngx_http_amonitor_shm_add(ctx, msg_id, hash,
            NGX_HTTP_AMONITOR_CLAIM_PENDING, NULL, ngx_current_msec + ctx->hold,
            &evicted);

        *state = NGX_HTTP_AMONITOR_CLAIM_NEW;
        result->len = 0;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    st->claimed = added;

    ngx_http_amonitor_shm_report(
        ctx, msg_id, evicted, an == NULL && added == NULL);

    return (an == NULL && added == NULL) ? NGX_ERROR : NGX_OK;
}


/* what is known of a msg_id, claiming nothing (NEW: never seen) */
static ngx_int_t
ngx_http_amonitor_shm_query(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data)
{
    ngx_http_amonitor_shm_t *ctx = st->data;

    uint32_t                  hash;
    ngx_http_amonitor_node_t *an;

    hash = ngx_http_amonitor_hash(msg_id->data, msg_id->len);

    *state = NGX_HTTP_AMONITOR_CLAIM_NEW;
    result->len = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    an = ngx_http_amonitor_shm_lookup(ctx, msg_id, hash);

    if (an != NULL && (ngx_msec_int_t) (an->expire - ngx_current_msec) > 0) {
        *state = an->state;
        result->len = an->result_len;
        ngx_memcpy(result->data, an->data + an->id_len, an->result_len);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


static void
ngx_http_amonitor_shm_finish(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
    uint32_t hash, ngx_http_amonitor_claim_e state, ngx_str_t *result)
{
    ngx_http_amonitor_shm_t *ctx = st->data;

    ngx_str_t                 r;
    ngx_msec_t                expire;
    ngx_uint_t                evicted;
    ngx_http_amonitor_node_t *an, *old;

    evicted = 0;

    /* a result too long to keep is left out, the state is kept */
    r.len = (result && result->len <= NGX_HTTP_AMONITOR_STORED_MAX)
        ? result->len
        : 0;
    r.data = r.len ? result->data : NULL;
    expire = ngx_current_msec + ctx->ttl; /* from the outcome, as in Redis */

    ngx_shmtx_lock(&ctx->shpool->mutex);

    old = ngx_http_amonitor_shm_lookup(ctx, msg_id, hash);

    if (old != NULL && r.len <= old->room) {
        /* the usual case: the result fits where the claim is */
        old->state = (u_char) state;
        old->expire = expire;
        old->result_len = (u_short) r.len;

        if (r.len) {
            ngx_memcpy(old->data + old->id_len, r.data, r.len);
        }

        ngx_queue_remove(&old->queue);
        ngx_queue_insert_head(&ctx->sh->lru, &old->queue);
        an = old;

    } else {
        if (old != NULL) { /* a longer result, or evicted: anew */
            ngx_http_amonitor_shm_delete(ctx, old);
        }

        an = ngx_http_amonitor_shm_add(
            ctx, msg_id, hash, state, &r, expire, &evicted);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_amonitor_shm_report(ctx, msg_id, evicted, an == NULL);
}


static void
ngx_http_amonitor_shm_release(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id)
{
    ngx_http_amonitor_shm_t *ctx = st->data;

    uint32_t                  hash;
    ngx_http_amonitor_node_t *an;

    hash = ngx_http_amonitor_hash(msg_id->data, msg_id->len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    an = ngx_http_amonitor_shm_lookup(ctx, msg_id, hash);

    if (an != NULL && an->state == NGX_HTTP_AMONITOR_CLAIM_PENDING) {
        ngx_http_amonitor_shm_delete(ctx, an);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


/*
 * A new msg_id misses the cache on its slot and, in a full zone, on the
 * LRU tail it evicts and its slot; a finish on its slot and node (the
 * hint in store->claimed).  Loaded before the mutex.  A pass's claims
 * each evict the next tail: a call loads the slots of two tails and a
 * third node, so a claim finds what it evicts loaded by the call before.
 * No lock: a link is followed only into the zone (a node just removed by
 * another worker has NULL links in debug builds, a freed one anything).
 */
static void
ngx_http_amonitor_shm_prefetch(
    ngx_http_amonitor_store_t *st, uint32_t hash, ngx_uint_t claim, void *hint)
{
#if (defined __GNUC__ || defined __clang__)
    ngx_http_amonitor_shm_t *ctx = st->data;

    u_char                    *lo, *hi;
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_http_amonitor_node_t  *tail;
    ngx_http_amonitor_shctx_t *sh;

    sh = ctx->sh;
    lo = ctx->shpool->start;
    hi = ctx->shpool->end - sizeof(ngx_http_amonitor_node_t);

    __builtin_prefetch(&sh->slots[hash & sh->mask]);

    if (!claim) {
        /* a finish updates its node in place: nothing is evicted */
        if (hint) {
            __builtin_prefetch(hint);
            __builtin_prefetch((u_char *) hint + 64);
        }

        return;
    }

    q = sh->lru.prev;

    for (i = 0; i < 2 && q != &sh->lru; i++) {
        if ((u_char *) q < lo || (u_char *) q > hi) {
            return;
        }

        tail = ngx_queue_data(q, ngx_http_amonitor_node_t, queue);
        __builtin_prefetch(&sh->slots[tail->hash & sh->mask]);
        q = tail->queue.prev;
    }

    __builtin_prefetch(q);
#endif
}
