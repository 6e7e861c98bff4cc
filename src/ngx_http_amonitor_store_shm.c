/*
 * Copyright (C) AMonitor authors
 *
 * The dedupe table in the shared memory zone: open addressing keyed by
 * the hash of the msg_id, outcomes in an LRU queue and claims of actions
 * under way in their own queue (never evicted), expiry in the node.
 * Shared by all workers; survives reload (the zone: store_shm_zone.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_store_shm.h"


static ngx_http_amonitor_node_t *ngx_http_amonitor_shm_lookup(
    ngx_http_amonitor_shm_t *ctx, ngx_str_t *id, uint32_t hash);
static void ngx_http_amonitor_shm_busy(
    ngx_http_amonitor_shm_t *ctx, ngx_str_t *msg_id);
static void ngx_http_amonitor_shm_expire_queue(
    ngx_http_amonitor_shm_t *ctx, ngx_queue_t *queue, ngx_uint_t force);
static void ngx_http_amonitor_shm_expire(
    ngx_http_amonitor_shm_t *ctx, ngx_uint_t force);
static ngx_uint_t ngx_http_amonitor_shm_unlink(
    ngx_http_amonitor_shm_t *ctx, ngx_http_amonitor_node_t *an);
static void ngx_http_amonitor_shm_delete(
    ngx_http_amonitor_shm_t *ctx, ngx_http_amonitor_node_t *an);
static ngx_http_amonitor_node_t *ngx_http_amonitor_shm_alloc(
    ngx_http_amonitor_shm_t *ctx, size_t size, ngx_uint_t *evicted);
static ngx_int_t ngx_http_amonitor_shm_claim(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *target,
    ngx_http_amonitor_claim_e *state, ngx_str_t *result,
    ngx_http_amonitor_claim_pt handler, void *data);
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
static void ngx_http_amonitor_shm_zone_free(
    ngx_http_amonitor_store_t *st, void *p);
static void *ngx_http_amonitor_shm_zone_alloc(
    ngx_http_amonitor_store_t *st, size_t size);
static void ngx_http_amonitor_shm_report(ngx_http_amonitor_shm_t *ctx,
    ngx_str_t *msg_id, ngx_uint_t evicted, ngx_uint_t failed);


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
    ctx->store.zone_free = ngx_http_amonitor_shm_zone_free;
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
 * Unlink "an" from its queue and from the index: later slots of its run
 * that may live in the freed slot move back into it (linear probing's
 * deletion), so that no lookup stops early at a hole.  0: it was not
 * indexed (cannot happen).
 */
static ngx_uint_t
ngx_http_amonitor_shm_unlink(
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
            return 0;
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

    return 1;
}


/* unlink and free "an": the zone has room again */
static void
ngx_http_amonitor_shm_delete(
    ngx_http_amonitor_shm_t *ctx, ngx_http_amonitor_node_t *an)
{
    (void) ngx_http_amonitor_shm_unlink(ctx, an);

    ngx_slab_free_locked(ctx->shpool, an);
    ctx->sh->full = 0;
}


/*
 * Drop expired entries from the tails of both queues; "force" evicts the
 * least recently used outcome.  A pending claim is never evicted: its
 * action may still run, and a repeat must find it.  It goes when its hold
 * (ack timeout and late window) is over, if no outcome came by then.
 */
static void
ngx_http_amonitor_shm_expire(ngx_http_amonitor_shm_t *ctx, ngx_uint_t force)
{
    ngx_http_amonitor_shm_expire_queue(ctx, &ctx->sh->pending, 0);
    ngx_http_amonitor_shm_expire_queue(ctx, &ctx->sh->lru, force);
}


static void
ngx_http_amonitor_shm_expire_queue(
    ngx_http_amonitor_shm_t *ctx, ngx_queue_t *queue, ngx_uint_t force)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_msec_int_t            ms;
    ngx_http_amonitor_node_t *an;

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(queue)) {
            return;
        }

        q = ngx_queue_last(queue);
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
     * A zone full and evicting, nothing freed since its last eviction: the
     * least recently used outcome's node is taken over as it is when it
     * has the size asked for, where evicting it and asking the slab again
     * would give the same memory back.
     */
    if (ctx->sh->full && !ngx_queue_empty(&ctx->sh->lru)) {
        an = ngx_queue_data(
            ngx_queue_last(&ctx->sh->lru), ngx_http_amonitor_node_t, queue);

        if (ngx_http_amonitor_node_size(an->id_len) + an->room == size) {
            (*evicted)++;

            if (ngx_http_amonitor_shm_unlink(ctx, an)) {
                return an;
            }

            /* not indexed (cannot happen): freed as a delete frees it */
            ngx_slab_free_locked(ctx->shpool, an);
            ctx->sh->full = 0;
        }
    }

    /*
     * Slab pages hold one size class: freeing a node of another class may
     * free no page, so evict until a whole page comes free, up to a bound.
     */
    for (i = 0; i < 1024; i++) {
        an = ngx_slab_alloc_locked(ctx->shpool, size);
        if (an != NULL) {
            /* after evictions: full, until something is freed */
            ctx->sh->full = (i > 0);
            return an;
        }

        if (ngx_queue_empty(&ctx->sh->lru)) {
            break;
        }

        /* full: evict the least recently used outcome, live or not */
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


/* the registry's and the target state's frees: the zone has room again */
static void
ngx_http_amonitor_shm_zone_free(ngx_http_amonitor_store_t *st, void *p)
{
    ngx_http_amonitor_shm_t *ctx = st->data;

    ngx_slab_free_locked(ctx->shpool, p);
    ctx->sh->full = 0;
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

    ngx_queue_insert_head(state == NGX_HTTP_AMONITOR_CLAIM_PENDING
            ? &ctx->sh->pending
            : &ctx->sh->lru,
        &an->queue);

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
    uint32_t hash, ngx_str_t *target, ngx_http_amonitor_claim_e *state,
    ngx_str_t *result, ngx_http_amonitor_claim_pt handler, void *data)
{
    ngx_http_amonitor_shm_t *ctx = st->data;

    ngx_uint_t                evicted, busy;
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
        if (an->state != NGX_HTTP_AMONITOR_CLAIM_PENDING) {
            ngx_queue_remove(&an->queue);
            ngx_queue_insert_head(&ctx->sh->lru, &an->queue);
        }

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

    /* no outcome left to evict: the zone holds only actions under way */
    busy = an == NULL && added == NULL && ngx_queue_empty(&ctx->sh->lru);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    st->claimed = added;

    if (busy) {
        ngx_http_amonitor_shm_busy(ctx, msg_id);
        return NGX_DECLINED;
    }

    ngx_http_amonitor_shm_report(
        ctx, msg_id, evicted, an == NULL && added == NULL);

    return (an == NULL && added == NULL) ? NGX_ERROR : NGX_OK;
}


/*
 * The zone is full of claims of actions still under way, which are never
 * evicted: a new action is refused (RATE_LIMITED) until some are answered
 * or time out.  Said at once, then summed up at most once a minute.
 */
static void
ngx_http_amonitor_shm_busy(ngx_http_amonitor_shm_t *ctx, ngx_str_t *msg_id)
{
    ngx_msec_t since;

    ctx->busy_unlogged++;
    since = ngx_current_msec - ctx->busy_logged;

    if (ctx->busy_logged != 0 && since < NGX_HTTP_AMONITOR_EVICT_LOG_EVERY) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
        "amonitor zone is full of actions waiting for their acks: "
        "msg_id \"%V\" refused (RATE_LIMITED, %ui in all since the last "
        "such line); increase the zone size",
        msg_id, ctx->busy_unlogged);

    ctx->busy_logged = ngx_current_msec ? ngx_current_msec : 1;
    ctx->busy_unlogged = 0;
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
    an = NULL;

    if (old != NULL && r.len > old->room) {
        /*
         * A longer result: a node for it first, the claim out of reach of
         * the eviction meanwhile; if none comes free, the outcome is kept
         * in the claim's node without its result.
         */
        ngx_queue_remove(&old->queue);
        ngx_queue_insert_head(&ctx->sh->pending, &old->queue);

        an = ngx_http_amonitor_shm_add(
            ctx, msg_id, hash, state, &r, expire, &evicted);

        if (an != NULL) {
            ngx_http_amonitor_shm_delete(ctx, old);
            old = NULL;

        } else {
            r.len = 0;
        }
    }

    if (old != NULL) {
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

    } else if (an == NULL) {
        /* the claim expired or is gone: the outcome anew */
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
