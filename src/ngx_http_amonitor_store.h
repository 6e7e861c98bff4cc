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
 * "result" is a stored record (ngx_http_amonitor_stored_pack(): the
 * target's name, then a JSON object text, the SDK's ack result or the
 * error) of at most NGX_HTTP_AMONITOR_STORED_MAX bytes, copied into the
 * caller's buffer.  The stores keep it as bytes.
 */
/*
 * A target learned at run time, as kept in the zone: how it was learned
 * (the precedence: a register displaces an on-demand dial), when a worker
 * last had it open (or learned it), and whether one ever did.  Allocated
 * from the slab for its id and URL, found through two hash indexes (by
 * id, by URL), and queued by last-seen time with the others of its kind,
 * oldest first.  A removed entry ("live" 0) stays until the change log
 * no longer names it ("refs").
 */
#define NGX_HTTP_AMONITOR_DIALED     1 /* a panel's action named its URL */
#define NGX_HTTP_AMONITOR_REGISTERED 2 /* an SDK's register message */

/* the longest id and URL an entry keeps ("learn" refuses longer ones) */
#define NGX_HTTP_AMONITOR_REG_ID_MAX  256
#define NGX_HTTP_AMONITOR_REG_URL_MAX 512

typedef struct ngx_http_amonitor_reg_s ngx_http_amonitor_reg_t;

struct ngx_http_amonitor_reg_s {
    ngx_http_amonitor_reg_t *id_next; /* in its bucket by id */
    ngx_http_amonitor_reg_t *url_next; /* in its bucket by URL */
    ngx_queue_t              queue; /* dialed or registered, by "seen" */
    uint64_t                 seen; /* ms since the epoch */
    ngx_uint_t               refs; /* records of the change log */
    uint32_t                 id_hash;
    uint32_t                 url_hash;
    u_short                  id_len;
    u_short                  url_len;
    u_char                   kind; /* DIALED, REGISTERED */
    u_char                   opened; /* a worker had it open once */
    u_char                   live; /* in the indexes and a queue */
    u_char                   data[1]; /* id, then URL */
};


/*
 * The change log: the entry each change touched (added, removed, kind
 * changed), record "seq" at log[seq % NGX_HTTP_AMONITOR_REG_LOG].  A
 * worker reads the records written since it last looked; one further
 * behind than the ring reads the whole registry once.
 */
#define NGX_HTTP_AMONITOR_REG_LOG 512

typedef struct {
    ngx_atomic_t              seq; /* records ever written */
    ngx_atomic_t              refused; /* adds refused: limit, memory */
    ngx_uint_t                n; /* live entries */
    ngx_uint_t                ndialed; /* of them DIALED */
    ngx_uint_t                mask; /* buckets - 1 */
    ngx_http_amonitor_reg_t **by_id; /* slab, mask + 1 buckets */
    ngx_http_amonitor_reg_t **by_url;
    ngx_queue_t               dialed; /* reg_t.queue, oldest first */
    ngx_queue_t               registered;
    ngx_http_amonitor_reg_t  *log[NGX_HTTP_AMONITOR_REG_LOG];
} ngx_http_amonitor_registry_t;


/* what a worker reads of one changed (or, resyncing, every) entry */
typedef struct {
    ngx_str_t  id;
    ngx_str_t  url; /* empty: the id is in the registry no more */
    ngx_uint_t kind;
} ngx_http_amonitor_reg_change_t;


/*
 * What the zone knows of each target, whichever worker learned it: its
 * state (up while at least one worker has a connection open), since when
 * and why, the last heartbeat (bytes as forwarded, at most
 * NGX_HTTP_AMONITOR_HB_KEEP), and per-target counters for metrics.
 * Records are never removed or moved (at most
 * NGX_HTTP_AMONITOR_MAX_TRACKED): they are listed in chunks of
 * NGX_HTTP_AMONITOR_TRACK_CHUNK pointers, allocated as targets come, so
 * that readers walk them without the mutex; a hash finds one by name.
 */
#define NGX_HTTP_AMONITOR_TRACK_CHUNK  512
#define NGX_HTTP_AMONITOR_TRACK_CHUNKS 128
#define NGX_HTTP_AMONITOR_MAX_TRACKED \
    (NGX_HTTP_AMONITOR_TRACK_CHUNK * NGX_HTTP_AMONITOR_TRACK_CHUNKS)
#define NGX_HTTP_AMONITOR_TRACK_BUCKETS 1024
#define NGX_HTTP_AMONITOR_HB_KEEP       4096
#define NGX_HTTP_AMONITOR_REASON_MAX    64
#define NGX_HTTP_AMONITOR_RTT_BUCKETS   14 /* 13 bounds and +Inf */

typedef struct ngx_http_amonitor_tstate_s ngx_http_amonitor_tstate_t;

struct ngx_http_amonitor_tstate_s {
    ngx_http_amonitor_tstate_t *next; /* in its hash bucket */
    ngx_atomic_t hb_hash; /* of the kept heartbeat's msg_id, 0: none */
    ngx_atomic_t hb_at; /* when the last one came, ms since the epoch */
    ngx_atomic_t actions; /* forwarded to the SDK */
    ngx_atomic_t failures; /* ended in an error after the claim */
    ngx_uint_t   up; /* workers with a connection open */
    uint64_t     up_slots; /* their counter slots, a bit each */
    uint64_t     since; /* last change of state, ms since the epoch */
    u_char      *hb; /* slab, hb_cap bytes */
    u_char      *url; /* slab, url_len bytes: a learned URL can change */
    u_short      hb_len;
    u_short      hb_cap;
    u_short      id_len;
    u_short      url_len;
    u_char       hb_opcode;
    u_char       state; /* 1: up */
    u_char       dynamic;
    u_char       forgotten; /* a learned target no worker keeps */
    u_char       reason_len;
    u_char       reason[NGX_HTTP_AMONITOR_REASON_MAX];
    u_char       data[1]; /* id */
};


/* a copy of one record, made under the mutex for the snapshot */
typedef struct {
    ngx_str_t  id;
    ngx_str_t  url;
    ngx_str_t  reason;
    ngx_uint_t up;
    ngx_uint_t dynamic;
    uint64_t   since;
    uint64_t   hb_at;
    ngx_uint_t hb_opcode;
    uint32_t   hb_hash;
    size_t     hb_len;
    ngx_uint_t actions;
    ngx_uint_t failures;
    u_char     hb[NGX_HTTP_AMONITOR_HB_KEEP];
    u_char     idbuf[256];
    u_char     urlbuf[AMON_MAX_URL_LEN + 16];
    u_char     rbuf[NGX_HTTP_AMONITOR_REASON_MAX];
} ngx_http_amonitor_tsnap_t;


/* the part of the zone the state and metrics code shares */
typedef struct {
    ngx_uint_t                   ntargets;
    ngx_http_amonitor_tstate_t **chunks[NGX_HTTP_AMONITOR_TRACK_CHUNKS];
    ngx_http_amonitor_tstate_t  *buckets[NGX_HTTP_AMONITOR_TRACK_BUCKETS];
    ngx_uint_t                   untracked; /* targets refused: full */
    ngx_atomic_t    rtt[NGX_HTTP_AMONITOR_RTT_BUCKETS]; /* not cumulative */
    ngx_atomic_t    rtt_sum_us;
    ngx_pid_t       slot_pid[NGX_HTTP_AMONITOR_COUNTER_SLOTS]; /* 0: free */
    ngx_uint_t      slot_sharers[NGX_HTTP_AMONITOR_COUNTER_SLOTS]; /* others */
    amon_hash_key_t hash_key; /* of ngx_http_amonitor_hash(), every worker's */
} ngx_http_amonitor_shared_t;


/* record "i" (< ntargets): its chunk exists once ntargets counts it */
#define ngx_http_amonitor_tracked(sh, i) \
    ((sh)->chunks[(i) / NGX_HTTP_AMONITOR_TRACK_CHUNK] \
                 [(i) % NGX_HTTP_AMONITOR_TRACK_CHUNK])


typedef void (*ngx_http_amonitor_claim_pt)(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result);
typedef void (*ngx_http_amonitor_stored_pt)(void *data);


struct ngx_http_amonitor_store_s {
    /*
     * Claim "msg_id" (of "hash", ngx_http_amonitor_hash() of it: the caller
     * has it already) atomically, for an action to "target" (its id as the
     * panel named it, else its target_url: what a lost claim's record
     * names, see store_redis_lua.h).  Returns NGX_OK with *state and "result"
     * filled in, NGX_AGAIN when "handler" will be called later, NGX_BUSY
     * when too many claims are under way (nothing was claimed: the caller
     * answers RATE_LIMITED) or NGX_ERROR (the caller answers INTERNAL).
     */
    ngx_int_t (*claim)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        uint32_t hash, ngx_str_t *target, ngx_http_amonitor_claim_e *state,
        ngx_str_t *result, ngx_http_amonitor_claim_pt handler, void *data);

    /* record the outcome (DONE or FAILED) with its result; "hash" as claim */
    void (*finish)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        uint32_t hash, ngx_http_amonitor_claim_e state, ngx_str_t *result);

    /*
     * Right after a finish of "msg_id": NGX_AGAIN when "handler" will be
     * called once the store has it (or once that cannot be known: the
     * connection lost), NGX_DECLINED when there is nothing to wait for.
     * NULL: a store that has a finish at once (the zone).
     */
    ngx_int_t (*stored)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        ngx_http_amonitor_stored_pt handler, void *data);

    /*
     * What is known of "msg_id", claiming nothing: as claim (NGX_OK with
     * *state, NEW meaning nothing, and "result" filled in; NGX_AGAIN and
     * "handler" later, always called; NGX_ERROR: cannot tell now).
     */
    ngx_int_t (*query)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id,
        ngx_http_amonitor_claim_e *state, ngx_str_t *result,
        ngx_http_amonitor_claim_pt handler, void *data);

    /* forget a claim whose action never reached the SDK */
    void (*release)(ngx_http_amonitor_store_t *st, ngx_str_t *msg_id);

    /*
     * A claim ("claim" 1) or the finish of a claim (0) of a msg_id of
     * this hash comes soon: start loading what it will read, so that the
     * cache misses overlap other work (NULL: the store has nothing to
     * load).  0 loads only the msg_id's own entry, 1 also what a claim
     * evicts.  "hint" (a finish): what "claimed" said at its claim.
     */
    void (*prefetch)(ngx_http_amonitor_store_t *st, uint32_t hash,
        ngx_uint_t claim, void *hint);

    /*
     * Set by a claim answered inline: where its entry is (the zone), for
     * the prefetch of its finish.  Only a hint: the entry may be gone by
     * then, and a prefetch of a stale address costs a useless load.
     */
    void *claimed;

    /*
     * The registry of targets learned at run time, shared by the workers
     * (registry.c).  "learn" adds one of "kind": NGX_OK (added or known),
     * NGX_DECLINED (full: "max_learned" entries, or an id or URL longer
     * than an entry keeps), NGX_ERROR (no memory
     * left in the zone; logged), NGX_BUSY (DIALED: "max_dialed" reached),
     * NGX_ABORT (the id is another URL's, learned by a register).  "changes" copies into "out"
     * (reg_change_t, strings in its pool) what changed since record *seq
     * and moves *seq on: NGX_OK, or NGX_DONE when "out" holds every entry
     * (the first call, *synced 0, or *seq fell off the change log: what
     * is not in "out" is gone), NGX_DECLINED (nothing new), NGX_ERROR.
     * "generation" is the number of records written, read without the
     * mutex.
     */
    ngx_int_t (*learn)(ngx_http_amonitor_store_t *st, ngx_str_t *id,
        ngx_str_t *url, ngx_uint_t kind, ngx_uint_t max_dialed,
        ngx_uint_t max_learned);
    ngx_int_t (*changes)(ngx_http_amonitor_store_t *st, ngx_uint_t *seq,
        ngx_uint_t *synced, ngx_array_t *out);
    ngx_uint_t (*generation)(ngx_http_amonitor_store_t *st);
    /*
     * Under the zone's mutex: "size" bytes of the slab for the registry,
     * made room for from the dedupe table when the zone is full, as a
     * new msg_id would (NULL: the backend keeps no dedupe table there).
     */
    void *(*zone_alloc)(ngx_http_amonitor_store_t *st, size_t size);
    /* under the mutex: free what zone_alloc or the slab gave (NULL: the
       slab's own free will do) */
    void (*zone_free)(ngx_http_amonitor_store_t *st, void *p);
    /*
     * Remove a learned target; "unopened": only if no worker ever had
     * it open.  NGX_OK: removed (or not there), NGX_DECLINED: kept.
     */
    ngx_int_t (*forget)(ngx_http_amonitor_store_t *st, ngx_str_t *id,
        ngx_str_t *url, ngx_uint_t unopened);
    void (*touch)(ngx_http_amonitor_store_t *st, ngx_str_t *id);
    ngx_uint_t (*expire)(ngx_http_amonitor_store_t *st, ngx_msec_t ttl);

    ngx_shm_zone_t *zone; /* amonitor_zone, whatever the backend */
    ngx_http_amonitor_registry_t *registry; /* in the zone (registry.c) */
    void                         *data;
};


ngx_int_t ngx_http_amonitor_store_shm_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
ngx_http_amonitor_store_t *ngx_http_amonitor_store_shm_create(
    ngx_shm_zone_t *shm_zone, ngx_pool_t *pool, ngx_msec_t ttl,
    ngx_msec_t hold);
ngx_http_amonitor_counter_slot_t *ngx_http_amonitor_store_shm_counter_slots(
    ngx_shm_zone_t *shm_zone);
ngx_http_amonitor_counters_t *ngx_http_amonitor_store_counters(
    ngx_shm_zone_t *shm_zone);
void ngx_http_amonitor_store_counters_release(ngx_shm_zone_t *shm_zone);
void ngx_http_amonitor_store_counters_sum(
    ngx_shm_zone_t *shm_zone, ngx_http_amonitor_counters_t *sum);

ngx_int_t ngx_http_amonitor_store_reload_check(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf);
void  ngx_http_amonitor_store_reload_keep(ngx_http_amonitor_main_conf_t *amcf);
char *ngx_http_amonitor_store_redis_conf(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_http_amonitor_shared_t *ngx_http_amonitor_store_shm_shared(
    ngx_shm_zone_t *shm_zone);

/*
 * Target state in the zone (store_state.c), with either backend.  "get"
 * finds or adds the record (NULL when the table is full or memory is
 * short); the others never fail visibly.
 */
ngx_http_amonitor_tstate_t *ngx_http_amonitor_store_target(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_str_t *url,
    ngx_uint_t dynamic);
ngx_uint_t ngx_http_amonitor_store_target_count(ngx_http_amonitor_store_t *st);
ngx_uint_t ngx_http_amonitor_store_target_known(
    ngx_http_amonitor_store_t *st, ngx_str_t *id, ngx_uint_t *up);
void ngx_http_amonitor_store_target_forget(
    ngx_http_amonitor_store_t *st, ngx_http_amonitor_tstate_t *ts);
void      ngx_http_amonitor_store_target_state(ngx_http_amonitor_store_t *st,
         ngx_http_amonitor_tstate_t *ts, ngx_uint_t up, ngx_uint_t was_open,
         const char *reason);
uint32_t  ngx_http_amonitor_store_heartbeat_hash(u_char *msg_id, size_t len);
void      ngx_http_amonitor_store_heartbeat(ngx_http_amonitor_store_t *st,
         ngx_http_amonitor_tstate_t *ts, uint32_t hash, ngx_uint_t opcode,
         u_char *data, size_t len);
ngx_int_t ngx_http_amonitor_store_target_id(
    ngx_http_amonitor_store_t *st, ngx_uint_t i, ngx_str_t *id);
ngx_int_t ngx_http_amonitor_store_target_copy(ngx_http_amonitor_store_t *st,
    ngx_uint_t i, ngx_http_amonitor_tsnap_t *out);
ngx_int_t ngx_http_amonitor_store_target_copy_id(ngx_http_amonitor_store_t *st,
    ngx_str_t *id, ngx_http_amonitor_tsnap_t *out);
void      ngx_http_amonitor_store_redis_ready(
         ngx_http_amonitor_store_t *st, ngx_uint_t was, ngx_uint_t now);
void ngx_http_amonitor_store_rtt(ngx_http_amonitor_store_t *st, ngx_msec_t rtt);
extern const ngx_msec_t ngx_http_amonitor_rtt_bounds[];

ngx_http_amonitor_store_t *ngx_http_amonitor_store_redis_create(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_redis_conf_t *conf);
void ngx_http_amonitor_store_redis_exit(ngx_http_amonitor_store_t *st);

ngx_http_amonitor_registry_t *ngx_http_amonitor_store_shm_registry(
    ngx_shm_zone_t *shm_zone);
void      ngx_http_amonitor_registry_methods(ngx_http_amonitor_store_t *st);
ngx_int_t ngx_http_amonitor_registry_init(
    ngx_http_amonitor_registry_t *rg, ngx_slab_pool_t *shpool, size_t size);


/* free "p" in the zone, under its mutex (the backend's zone_free) */
static ngx_inline void
ngx_http_amonitor_store_zone_free(ngx_http_amonitor_store_t *st, void *p)
{
    if (st->zone_free) {
        st->zone_free(st, p);
        return;
    }

    ngx_slab_free_locked((ngx_slab_pool_t *) st->zone->shm.addr, p);
}


#endif /* _NGX_HTTP_AMONITOR_STORE_H_INCLUDED_ */
