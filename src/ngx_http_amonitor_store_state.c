/*
 * Copyright (C) AMonitor authors
 *
 * What the zone knows of every target, so that a panel on any worker can
 * be told the current state at once: up or down since when and why, the
 * last heartbeat, per-target counters and the round-trip histogram; and
 * the workers' counters (a slot each), for status and metrics.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


#define NGX_HTTP_AMONITOR_HB_MIN 256 /* first room for a heartbeat */
#define NGX_HTTP_AMONITOR_EXITED "its agent worker exited"


static uint64_t   ngx_http_amonitor_state_now(void);
static ngx_uint_t ngx_http_amonitor_store_exited(
    ngx_http_amonitor_tstate_t *ts);
static void  ngx_http_amonitor_store_slot_clear(ngx_http_amonitor_shared_t *sh,
     ngx_http_amonitor_counter_slot_t *slots, ngx_uint_t i);
static void *ngx_http_amonitor_store_state_alloc(
    ngx_http_amonitor_store_t *st, size_t size);
static ngx_int_t ngx_http_amonitor_store_target_url(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_tstate_t *ts,
    ngx_str_t *url);
static ngx_http_amonitor_tstate_t *ngx_http_amonitor_store_target_new(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_shared_t *sh,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t dynamic);
static void ngx_http_amonitor_store_copy_locked(
    ngx_http_amonitor_tstate_t *ts, ngx_http_amonitor_tsnap_t *out);


/* this process's slot of the counters; whether it holds it alone */
static ngx_uint_t ngx_http_amonitor_slot;
static ngx_uint_t ngx_http_amonitor_slot_held;
static ngx_uint_t ngx_http_amonitor_slot_shared;


/* upper bounds of the round-trip buckets, ms; the last is +Inf */
const ngx_msec_t ngx_http_amonitor_rtt_bounds[NGX_HTTP_AMONITOR_RTT_BUCKETS
    - 1] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};


static uint64_t
ngx_http_amonitor_state_now(void)
{
    ngx_time_t *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


ngx_http_amonitor_tstate_t *
ngx_http_amonitor_store_target(ngx_http_amonitor_store_t *st, ngx_str_t *id,
    ngx_str_t *url, ngx_uint_t dynamic)
{
    uint32_t                    hash;
    ngx_slab_pool_t            *shpool;
    ngx_http_amonitor_shared_t *sh;
    ngx_http_amonitor_tstate_t *ts, **b;

    if (st == NULL || st->zone == NULL || id->len > 256
        || url->len > AMON_MAX_URL_LEN + 16) {
        return NULL;
    }

    sh = ngx_http_amonitor_store_shm_shared(st->zone);
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    hash = ngx_http_amonitor_hash(id->data, id->len);
    b = &sh->buckets[hash % NGX_HTTP_AMONITOR_TRACK_BUCKETS];

    ngx_shmtx_lock(&shpool->mutex);

    for (ts = *b; ts; ts = ts->next) {
        if (ngx_memn2cmp(ts->data, id->data, ts->id_len, id->len) == 0) {
            break;
        }
    }

    if (ts) {
        /* learned again, maybe at another URL (a register after a dial) */
        ts->forgotten = 0;
        ts->dynamic = (u_char) dynamic;
        (void) ngx_http_amonitor_store_target_url(st, ts, url);

    } else {
        ts = ngx_http_amonitor_store_target_new(st, sh, id, url, dynamic);

        if (ts) {
            ts->next = *b;
            *b = ts;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return ts;
}


/* the records in the zone (some may be forgotten ones) */
ngx_uint_t
ngx_http_amonitor_store_target_count(ngx_http_amonitor_store_t *st)
{
    if (st == NULL || st->zone == NULL) {
        return 0;
    }

    return ngx_http_amonitor_store_shm_shared(st->zone)->ntargets;
}


/*
 * Down because the worker that had it up died (a crash, SIGKILL: its
 * counts cleared by the worker started next), and no worker has spoken
 * of it since (store_target_state replaces the reason): amonitor_cluster
 * takes it for the last word of an owner that is gone (router seed).
 */
static ngx_uint_t
ngx_http_amonitor_store_exited(ngx_http_amonitor_tstate_t *ts)
{
    return ts->reason_len == sizeof(NGX_HTTP_AMONITOR_EXITED) - 1
        && ngx_memcmp(ts->reason, NGX_HTTP_AMONITOR_EXITED, ts->reason_len)
        == 0;
}


/*
 * Does the zone hold a record of "id" that is not forgotten (whichever
 * worker made it): without one, the target has not been up or down yet.
 * "up" (if not NULL): 1 when the record says up, 2 when down but a
 * worker that died had it up and no worker has spoken of it since.
 */
ngx_uint_t
ngx_http_amonitor_store_target_known(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_uint_t *up)
{
    ngx_uint_t                  known;
    ngx_slab_pool_t            *shpool;
    ngx_http_amonitor_shared_t *sh;
    ngx_http_amonitor_tstate_t *ts;

    if (st == NULL || st->zone == NULL) {
        return 0;
    }

    sh = ngx_http_amonitor_store_shm_shared(st->zone);
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    known = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (ts = sh->buckets[ngx_http_amonitor_hash(id->data, id->len)
             % NGX_HTTP_AMONITOR_TRACK_BUCKETS];
         ts; ts = ts->next) {
        if (ngx_memn2cmp(ts->data, id->data, ts->id_len, id->len) == 0) {
            known = !ts->forgotten;

            if (up) {
                *up = !known                             ? 0
                    : ts->state                          ? 1
                    : ngx_http_amonitor_store_exited(ts) ? 2
                                                         : 0;
            }

            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return known;
}


/*
 * Room in the zone for a target's state, under the mutex: a zone the
 * dedupe table filled gives its least recently used entries up for it
 * (a target added by a reload into a full zone had no record: no panel's
 * snapshot and no metric named it).
 */
static void *
ngx_http_amonitor_store_state_alloc(ngx_http_amonitor_store_t *st, size_t size)
{
    void *p;

    p = st->zone_alloc
        ? st->zone_alloc(st, size)
        : ngx_slab_alloc_locked((ngx_slab_pool_t *) st->zone->shm.addr, size);

    if (p) {
        ngx_memzero(p, size);
    }

    return p;
}


/* a new record, listed last; under the mutex */
static ngx_http_amonitor_tstate_t *
ngx_http_amonitor_store_target_new(ngx_http_amonitor_store_t *st,
    ngx_http_amonitor_shared_t *sh, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t dynamic)
{
    ngx_uint_t                  n;
    ngx_http_amonitor_tstate_t *ts, ***chunk;

    n = sh->ntargets;

    if (n >= NGX_HTTP_AMONITOR_MAX_TRACKED) {
        if (sh->untracked++ == 0) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                "amonitor: more than %d targets: the state of target \"%V\" "
                "and of later ones is not kept (snapshots, metrics)",
                NGX_HTTP_AMONITOR_MAX_TRACKED, id);
        }

        return NULL;
    }

    chunk = &sh->chunks[n / NGX_HTTP_AMONITOR_TRACK_CHUNK];

    if (*chunk == NULL) {
        *chunk = ngx_http_amonitor_store_state_alloc(
            st, NGX_HTTP_AMONITOR_TRACK_CHUNK * sizeof(void *));
    }

    ts = *chunk ? ngx_http_amonitor_store_state_alloc(
             st, offsetof(ngx_http_amonitor_tstate_t, data) + id->len)
                : NULL;

    if (ts && ngx_http_amonitor_store_target_url(st, ts, url) != NGX_OK) {
        ngx_http_amonitor_store_zone_free(st, ts);
        ts = NULL;
    }

    if (ts == NULL) {
        if (sh->untracked++ == 0) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                "amonitor: no room in the zone for the state of target "
                "\"%V\" (and maybe of later ones): snapshots and metrics "
                "leave it out; make amonitor_zone larger",
                id);
        }

        return NULL;
    }

    ts->id_len = (u_short) id->len;
    ts->dynamic = (u_char) dynamic;
    ts->since = ngx_http_amonitor_state_now();
    ngx_memcpy(ts->data, id->data, id->len);

    (*chunk)[n % NGX_HTTP_AMONITOR_TRACK_CHUNK] = ts;

    /* visible to readers only once it is complete */
    ngx_memory_barrier();
    sh->ntargets = n + 1;

    return ts;
}


/* the record's URL becomes "url" (unless it is that already); under the mutex */
static ngx_int_t
ngx_http_amonitor_store_target_url(ngx_http_amonitor_store_t *st,
    ngx_http_amonitor_tstate_t *ts, ngx_str_t *url)
{
    u_char *p;

    if (ts->url
        && ngx_memn2cmp(ts->url, url->data, ts->url_len, url->len) == 0) {
        return NGX_OK;
    }

    p = ngx_http_amonitor_store_state_alloc(st, url->len ? url->len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, url->data, url->len);

    if (ts->url) {
        ngx_http_amonitor_store_zone_free(st, ts->url);
    }

    ts->url = p;
    ts->url_len = (u_short) url->len;

    return NGX_OK;
}


/*
 * A learned target was forgotten: its record stays (records never move)
 * but it is left out of metrics until it is learned again.
 */
void
ngx_http_amonitor_store_target_forget(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_tstate_t *ts)
{
    ngx_slab_pool_t *shpool;

    if (ts == NULL || st == NULL || st->zone == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    ts->forgotten = 1;
    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * A worker's connection to the target opened (up) or closed or failed
 * (!up; "was_open" when it had been open).  The target is up while any
 * worker has it open; "since" moves only when that changes.
 */
void
ngx_http_amonitor_store_target_state(ngx_http_amonitor_store_t *st,
    ngx_http_amonitor_tstate_t *ts, ngx_uint_t up, ngx_uint_t was_open,
    const char *reason)
{
    size_t           len;
    ngx_uint_t       before;
    ngx_slab_pool_t *shpool;

    if (ts == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;
    len = reason ? ngx_min(ngx_strlen(reason), sizeof(ts->reason)) : 0;

    ngx_shmtx_lock(&shpool->mutex);

    before = ts->state;

    if (up) {
        ts->up++;
        ts->up_slots |= ngx_http_amonitor_slot_held
            ? (uint64_t) 1 << ngx_http_amonitor_slot
            : 0;

    } else if (was_open && ts->up) {
        ts->up--;
        ts->up_slots &= ngx_http_amonitor_slot_held
            ? ~((uint64_t) 1 << ngx_http_amonitor_slot)
            : ~(uint64_t) 0;
    }

    ts->state = (ts->up > 0);

    if (ts->state != before) {
        ts->since = ngx_http_amonitor_state_now();
    }

    if (!ts->state) {
        /*
         * Why it went down, kept for the snapshot while it stays down:
         * the failed dials after a lost connection do not make it
         * "cannot connect" (a target never connected yet).  The reason
         * a dead worker's clearing left goes at the next word of any
         * worker (store_exited).
         */
        if (ngx_http_amonitor_store_exited(ts)) {
            reason = "connection lost";
            len = sizeof("connection lost") - 1;
            ts->reason_len = 0;
        }

        if (ts->state != before || ts->reason_len == 0) {
            if (len) {
                ngx_memcpy(ts->reason, reason, len);
            }

            ts->reason_len = (u_char) len;
        }

    } else {
        ts->reason_len = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * The last heartbeat of a target: when it came, always, and its bytes
 * when they fit in NGX_HTTP_AMONITOR_HB_KEEP (a larger one forgets the
 * older bytes, so a panel is never told a stale heartbeat).  Every worker
 * receives the same heartbeat on its own connection (an SDK may stamp
 * each copy with its own time: the msg_id is what is the same): the
 * first one copies it, the others see its msg_id's hash without taking
 * the mutex and copy nothing.
 */
uint32_t
ngx_http_amonitor_store_heartbeat_hash(u_char *msg_id, size_t len)
{
    return ngx_http_amonitor_hash(msg_id, len) | 1;
}


void
ngx_http_amonitor_store_heartbeat(ngx_http_amonitor_store_t *st,
    ngx_http_amonitor_tstate_t *ts, uint32_t hash, ngx_uint_t opcode,
    u_char *data, size_t len)
{
    u_char          *p;
    size_t           cap;
    ngx_slab_pool_t *shpool;

    if (ts == NULL) {
        return;
    }

    if (len > NGX_HTTP_AMONITOR_HB_KEEP) {
        if (ts->hb_len == 0) {
            ts->hb_at = (ngx_atomic_uint_t) ngx_http_amonitor_state_now();
            return;
        }

        len = 0;

    } else if (ts->hb_hash == hash && ts->hb_len == len) {
        /* another worker kept this one already */
        ts->hb_at = (ngx_atomic_uint_t) ngx_http_amonitor_state_now();
        return;
    }

    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (len > ts->hb_cap) {
        cap = NGX_HTTP_AMONITOR_HB_MIN;

        while (cap < len) {
            cap <<= 1;
        }

        p = ngx_http_amonitor_store_state_alloc(st, cap);

        if (p != NULL) {
            if (ts->hb) {
                ngx_http_amonitor_store_zone_free(st, ts->hb);
            }

            ts->hb = p;
            ts->hb_cap = (u_short) cap;

        } else {
            len = 0;
        }
    }

    if (len) {
        ngx_memcpy(ts->hb, data, len);
    }

    ts->hb_len = (u_short) len;
    ts->hb_opcode = (u_char) opcode;
    ts->hb_hash = len ? hash : 0;
    ts->hb_at = (ngx_atomic_uint_t) ngx_http_amonitor_state_now();

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * The id of record "i", read without the mutex: a record's id is set
 * before the record is counted and never changes.  NGX_DONE past the
 * last one.
 */
ngx_int_t
ngx_http_amonitor_store_target_id(
    ngx_http_amonitor_store_t *st, ngx_uint_t i, ngx_str_t *id)
{
    ngx_http_amonitor_shared_t *sh;
    ngx_http_amonitor_tstate_t *ts;

    sh = ngx_http_amonitor_store_shm_shared(st->zone);

    if (i >= sh->ntargets) {
        return NGX_DONE;
    }

    ngx_memory_barrier();

    ts = ngx_http_amonitor_tracked(sh, i);
    id->data = ts->data;
    id->len = ts->id_len;

    return NGX_OK;
}


/* copy record "i"; NGX_DONE past the last one */
ngx_int_t
ngx_http_amonitor_store_target_copy(
    ngx_http_amonitor_store_t *st, ngx_uint_t i, ngx_http_amonitor_tsnap_t *out)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_amonitor_shared_t *sh;

    sh = ngx_http_amonitor_store_shm_shared(st->zone);
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    if (i >= sh->ntargets) {
        return NGX_DONE;
    }

    ngx_shmtx_lock(&shpool->mutex);
    ngx_http_amonitor_store_copy_locked(ngx_http_amonitor_tracked(sh, i), out);
    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/* copy the record of "id"; NGX_DECLINED when the zone has none */
ngx_int_t
ngx_http_amonitor_store_target_copy_id(ngx_http_amonitor_store_t *st,
    ngx_str_t *id, ngx_http_amonitor_tsnap_t *out)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_amonitor_shared_t *sh;
    ngx_http_amonitor_tstate_t *ts;

    sh = ngx_http_amonitor_store_shm_shared(st->zone);
    shpool = (ngx_slab_pool_t *) st->zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    for (ts = sh->buckets[ngx_http_amonitor_hash(id->data, id->len)
             % NGX_HTTP_AMONITOR_TRACK_BUCKETS];
         ts; ts = ts->next) {
        if (ngx_memn2cmp(ts->data, id->data, ts->id_len, id->len) == 0) {
            ngx_http_amonitor_store_copy_locked(ts, out);
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return ts ? NGX_OK : NGX_DECLINED;
}


/* a record's copy for the snapshot; under the mutex */
static void
ngx_http_amonitor_store_copy_locked(
    ngx_http_amonitor_tstate_t *ts, ngx_http_amonitor_tsnap_t *out)
{
    out->id.data = out->idbuf;
    out->id.len = ts->id_len;
    ngx_memcpy(out->idbuf, ts->data, ts->id_len);

    out->url.data = out->urlbuf;
    out->url.len = ts->url_len;
    ngx_memcpy(out->urlbuf, ts->url, ts->url_len);

    out->reason.data = out->rbuf;
    out->reason.len = ts->reason_len;
    ngx_memcpy(out->rbuf, ts->reason, ts->reason_len);

    out->up = ts->state;
    out->dynamic = ts->dynamic;
    out->since = ts->since;
    out->hb_at = ts->hb_at;
    out->hb_opcode = ts->hb_opcode;
    out->hb_len = ts->hb_len;
    out->hb_hash = (uint32_t) ts->hb_hash;
    out->actions = ts->actions;
    out->failures = ts->failures;

    if (ts->hb_len) {
        ngx_memcpy(out->hb, ts->hb, ts->hb_len);
    }
}


/* one action's round trip, from forward to ack, into the histogram */
void
ngx_http_amonitor_store_rtt(ngx_http_amonitor_store_t *st, ngx_msec_t rtt)
{
    ngx_uint_t                  i;
    ngx_http_amonitor_shared_t *sh;

    if (st == NULL || st->zone == NULL) {
        return;
    }

    sh = ngx_http_amonitor_store_shm_shared(st->zone);

    for (i = 0; i < NGX_HTTP_AMONITOR_RTT_BUCKETS - 1; i++) {
        if (rtt <= ngx_http_amonitor_rtt_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->rtt[i], 1);
    (void) ngx_atomic_fetch_add(&sh->rtt_sum_us, rtt * 1000);
}


/* a worker's Redis connection became usable or stopped being so */
void
ngx_http_amonitor_store_redis_ready(
    ngx_http_amonitor_store_t *st, ngx_uint_t was, ngx_uint_t now)
{
    ngx_http_amonitor_counter_slot_t *slots;

    if (st->zone == NULL || !was == !now) {
        return;
    }

    slots = ngx_http_amonitor_store_shm_counter_slots(st->zone);

    (void) ngx_atomic_fetch_add(
        &slots[ngx_http_amonitor_slot].c.redis_connections, now ? 1 : -1);
}


/*
 * This worker's slot of the counters: one that no live process holds,
 * its own number's if it can.  Slots of processes that died without
 * giving theirs back lose their gauges and their part in each target's
 * "up" first: a worker that crashed left its panels counted and its
 * targets up for good.  With more live workers than slots, a worker
 * shares one and holds none: a slot with sharers is never cleared nor
 * handed out (what a dead process counted there stays counted).
 */
ngx_http_amonitor_counters_t *
ngx_http_amonitor_store_counters(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t                        i, slot;
    ngx_pid_t                         pid;
    ngx_slab_pool_t                  *shpool;
    ngx_http_amonitor_shared_t       *sh;
    ngx_http_amonitor_counter_slot_t *slots;

    slots = ngx_http_amonitor_store_shm_counter_slots(shm_zone);
    sh = ngx_http_amonitor_store_shm_shared(shm_zone);
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_HTTP_AMONITOR_COUNTER_SLOTS; i++) {
        pid = sh->slot_pid[i];

        if (pid == 0 || kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH) {
            continue;
        }

        if (sh->slot_sharers[i] == 0) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                "amonitor: worker process %P exited without closing its "
                "connections: they are no longer counted",
                pid);
            ngx_http_amonitor_store_slot_clear(sh, slots, i);
        }

        sh->slot_pid[i] = 0;
    }

    slot = ngx_worker % NGX_HTTP_AMONITOR_COUNTER_SLOTS;

    for (i = 0; (sh->slot_pid[slot] != 0 || sh->slot_sharers[slot] != 0)
         && i < NGX_HTTP_AMONITOR_COUNTER_SLOTS;
         i++) {
        slot = i;
    }

    ngx_http_amonitor_slot_held =
        (sh->slot_pid[slot] == 0 && sh->slot_sharers[slot] == 0);

    if (ngx_http_amonitor_slot_held) {
        /* given back dirty (an exit with connections left): not counted */
        ngx_http_amonitor_store_slot_clear(sh, slots, slot);
        sh->slot_pid[slot] = ngx_pid;

    } else {
        slot = ngx_worker % NGX_HTTP_AMONITOR_COUNTER_SLOTS;
        sh->slot_sharers[slot]++;
        ngx_http_amonitor_slot_shared = 1;
    }

    ngx_http_amonitor_slot = slot;

    ngx_shmtx_unlock(&shpool->mutex);

    return &slots[slot].c;
}


/* the worker exits: its slot is free for the next one */
void
ngx_http_amonitor_store_counters_release(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t                  i;
    ngx_slab_pool_t            *shpool;
    ngx_http_amonitor_shared_t *sh;

    sh = ngx_http_amonitor_store_shm_shared(shm_zone);
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    i = ngx_http_amonitor_slot;

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_amonitor_slot_shared) {
        sh->slot_sharers[i] -= (sh->slot_sharers[i] > 0);

    } else if (ngx_http_amonitor_slot_held && sh->slot_pid[i] == ngx_pid) {
        sh->slot_pid[i] = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_amonitor_slot_held = 0;
    ngx_http_amonitor_slot_shared = 0;
}


/* under the mutex: nothing of slot "i" counts any more */
static void
ngx_http_amonitor_store_slot_clear(ngx_http_amonitor_shared_t *sh,
    ngx_http_amonitor_counter_slot_t *slots, ngx_uint_t i)
{
    uint64_t                      bit;
    ngx_uint_t                    n;
    ngx_http_amonitor_tstate_t   *ts;
    ngx_http_amonitor_counters_t *c;

    c = &slots[i].c;
    c->panels = 0;
    c->upstreams_open = 0;
    c->redis_claims = 0;
    c->redis_connections = 0;

    bit = (uint64_t) 1 << i;

    for (n = 0; n < sh->ntargets; n++) {
        ts = sh->chunks[n / NGX_HTTP_AMONITOR_TRACK_CHUNK]
                       [n % NGX_HTTP_AMONITOR_TRACK_CHUNK];

        if (ts == NULL || !(ts->up_slots & bit)) {
            continue;
        }

        ts->up_slots &= ~bit;
        ts->up -= (ts->up > 0);

        if (ts->state && ts->up == 0) {
            ts->state = 0;
            ts->since = ngx_http_amonitor_state_now();
            ts->reason_len = sizeof(NGX_HTTP_AMONITOR_EXITED) - 1;
            ngx_memcpy(ts->reason, NGX_HTTP_AMONITOR_EXITED, ts->reason_len);
        }
    }
}


/* the counters of all workers added up, for status and metrics */
void
ngx_http_amonitor_store_counters_sum(
    ngx_shm_zone_t *shm_zone, ngx_http_amonitor_counters_t *sum)
{
    ngx_uint_t                        i, k;
    ngx_atomic_t                     *to, *from;
    ngx_http_amonitor_counter_slot_t *slots;

    slots = ngx_http_amonitor_store_shm_counter_slots(shm_zone);

    ngx_memzero(sum, sizeof(ngx_http_amonitor_counters_t));
    to = (ngx_atomic_t *) sum;

    for (i = 0; i < NGX_HTTP_AMONITOR_COUNTER_SLOTS; i++) {
        from = (ngx_atomic_t *) &slots[i].c;

        for (k = 0; k < sizeof(*sum) / sizeof(ngx_atomic_t); k++) {
            to[k] += from[k];
        }
    }
}
