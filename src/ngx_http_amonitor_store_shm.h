/*
 * Copyright (C) AMonitor authors
 *
 * The shared memory zone's layout, for the files that read it: the
 * dedupe table's nodes and index (store_shm.c) and the zone's setup
 * (store_shm_zone.c).
 */

#ifndef _NGX_HTTP_AMONITOR_STORE_SHM_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_STORE_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


#define NGX_HTTP_AMONITOR_NODE_MIN 256
/* the layout's version: bump it when the zone's structures change */
#define NGX_HTTP_AMONITOR_ZONE_MAGIC 0x414d4f4e000eULL


typedef struct ngx_http_amonitor_node_s ngx_http_amonitor_node_t;

struct ngx_http_amonitor_node_s {
    ngx_queue_t queue; /* in the LRU, or in "pending" while pending */
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
    ngx_queue_t                      lru; /* outcomes, for eviction */
    ngx_queue_t                      pending; /* claims, oldest last */
    ngx_uint_t                       full; /* evicted to allocate, nothing
                                              freed since (shm_alloc) */
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
    ngx_msec_t                 busy_logged; /* full of pending claims */
    ngx_uint_t                 busy_unlogged;
} ngx_http_amonitor_shm_t;


/* a full zone is said once, then summed up at most once a minute */
#define NGX_HTTP_AMONITOR_EVICT_LOG_EVERY 60000


#define ngx_http_amonitor_node_size(len) \
    (offsetof(ngx_http_amonitor_node_t, data) + (len))


#endif /* _NGX_HTTP_AMONITOR_STORE_SHM_H_INCLUDED_ */
