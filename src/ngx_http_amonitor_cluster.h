/*
 * Copyright (C) AMonitor authors
 *
 * What the cluster files share (amonitor_cluster): the bus (two Redis
 * connections per worker, one for commands, one subscribed), the owner
 * leases and shared routes, the actions this worker runs for other
 * workers.  Outside the cluster files only action_route.c (the hooks it
 * sets) and status.c (the lease count) include it.
 */

#ifndef _NGX_HTTP_AMONITOR_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store_redis.h"


#define NGX_HTTP_AMONITOR_CLUSTER_TOKEN_LEN 192
#define NGX_HTTP_AMONITOR_CLUSTER_FIELDS    6
#define NGX_HTTP_AMONITOR_CLUSTER_INFLIGHT  4096 /* commands not answered */
#define NGX_HTTP_AMONITOR_CLUSTER_RESYNC    30000 /* full route resync, ms */
#define NGX_HTTP_AMONITOR_CLUSTER_DRAIN     10 /* exiting: checked, ms */


/*
 * Did Redis lose its data (FLUSHALL, a restart without it)?  The state key
 * (KEYS[a]) is missing then.  The script that finds it so (a try for a
 * lease, a renewal, an action for a target without a lease) writes it
 * again, and when a worker of the cluster holds or has held a lease (one
 * counted on the owners channel, ARGV[b]; a renewal passes "" for "this
 * one"), it marks the loss (KEYS[a+1], for ARGV[b+1] ms: lease*3/4).
 * While the mark is there, no missing lease is taken: each live owner
 * takes its own back at its next renewal (within lease/3 + a tick).  A
 * first start, with no owner anywhere, takes its leases at once; a worker
 * that connects in the window (and writes its routes) changes nothing.
 */
#define NGX_HTTP_AMONITOR_LUA_LOST(a, b) \
    "if redis.call('EXISTS', KEYS[" a "]) == 0 then " \
    "redis.call('SET', KEYS[" a "], '1') " \
    "if ARGV[" b "] == '' " \
    "or redis.call('PUBSUB', 'NUMSUB', ARGV[" b "])[2] > 0 then " \
    "redis.call('SET', KEYS[" a "+1], '1', 'PX', ARGV[" b "+1]) end end "

/* the kinds of bus messages: the first byte */
#define NGX_HTTP_AMONITOR_BUS_EVENT 'E' /* sender, target, opcode, bytes */
#define NGX_HTTP_AMONITOR_BUS_ROUTE 'T' /* sender, target, url, origin */
#define NGX_HTTP_AMONITOR_BUS_ACTION \
    'A' /* reply-to, target, msg_id, frame, claim */
#define NGX_HTTP_AMONITOR_BUS_ACK   'K' /* target, opcode, bytes */
#define NGX_HTTP_AMONITOR_BUS_ERROR 'R' /* target, msg_id, code, message */
#define NGX_HTTP_AMONITOR_BUS_QUERY 'Q' /* asker: who holds which target */
#define NGX_HTTP_AMONITOR_BUS_HELD  'H' /* sender, ids (a newline between) */


typedef struct ngx_http_amonitor_cluster_s ngx_http_amonitor_cluster_t;


/* a message read from the bus: its kind and up to six fields */
typedef struct {
    u_char     kind;
    ngx_uint_t n;
    ngx_str_t  f[NGX_HTTP_AMONITOR_CLUSTER_FIELDS];
} ngx_http_amonitor_bus_msg_t;


typedef void (*ngx_http_amonitor_bus_pt)(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m);
typedef void (*ngx_http_amonitor_bus_ready_pt)(ngx_http_amonitor_cluster_t *cl);
/* whether this worker's action may wait for the target's owner longer */
typedef ngx_uint_t (*ngx_http_amonitor_bus_hold_pt)(
    ngx_http_amonitor_worker_t *w, ngx_str_t *target, ngx_str_t *msg_id,
    ngx_int_t got);
/* this worker holds the target now: its action goes to the SDK from here */
typedef ngx_int_t (*ngx_http_amonitor_bus_rehome_pt)(
    ngx_http_amonitor_worker_t *w, ngx_str_t *target, ngx_str_t *msg_id,
    u_char *frame, size_t len);


/*
 * An action this worker (the owner) wrote to its SDK for another worker,
 * or holds (msg) while its connection to the SDK is being made
 */
typedef struct {
    ngx_str_node_t                sn; /* msg_id */
    ngx_queue_t                   queue; /* cl->remote or cl->remote_wait */
    ngx_http_amonitor_upstream_t *upstream;
    ngx_str_t                     reply_to; /* the requester's token */
    ngx_str_t                     claim; /* its claim's value, or empty */
    uint64_t                      end_offset;
    ngx_msec_t                    deadline;
    ngx_http_amonitor_msg_t      *msg; /* waiting: the frame to write */
    ngx_event_t                   wait; /* waiting: how long at most */
    unsigned                      adopted : 1; /* the claim held here too */
} ngx_http_amonitor_remote_t;


/* a target's lease as this worker sees it (one per upstream) */
typedef struct {
    ngx_queue_t                   queue; /* cl->leases */
    ngx_http_amonitor_upstream_t *upstream;
    ngx_str_t                     key; /* prefix "lease:" id */
    ngx_msec_t                    retry_at; /* next acquire attempt */
    unsigned                      owned : 1;
    unsigned                      busy : 1; /* a command under way */
    unsigned                      acquiring : 1; /* that command: acquire */
    unsigned                      gone : 1; /* the upstream went */
    unsigned                      settled : 1; /* a try answered */
} ngx_http_amonitor_lease_t;


struct ngx_http_amonitor_cluster_s {
    ngx_http_amonitor_worker_t       *worker;
    ngx_http_amonitor_cluster_conf_t *conf;
    ngx_http_amonitor_redis_conf_t   *redis;
    ngx_http_amonitor_redis_t        *cmd; /* commands and PUBLISH */
    ngx_http_amonitor_redis_t        *sub; /* SUBSCRIBE only */
    redisAsyncContext                *subscribed; /* sub->ac when done */
    ngx_uint_t                        announced; /* cmd->readies, told */
    ngx_msec_t                        confirm_at; /* states asked: until */
    unsigned                          confirm : 1; /* states to ask */
    unsigned                          routes_asked : 1; /* since then */
    unsigned                          routes_read : 1; /* since then */
    unsigned                          owner : 1; /* has held a lease */
    unsigned                          draining : 1; /* see cluster_quit */
    unsigned                          drained : 1; /* or not to be */
    unsigned                          unsubscribed : 1; /* from ch_self */
    ngx_log_t                        *log;
    ngx_str_t                         token; /* instance:pid:random */
    ngx_str_t                         ch_events; /* prefix "ev" */
    ngx_str_t                         ch_routes; /* prefix "rt" */
    ngx_str_t                         ch_self; /* prefix "w:" token */
    ngx_str_t                         k_routes; /* prefix "routes" */
    ngx_str_t                         k_seen; /* prefix "seen" */
    ngx_str_t                         k_state; /* prefix "state" */
    ngx_str_t                         k_lost; /* prefix "lost" */
    ngx_str_t                         ch_owners; /* prefix "owners" */
    ngx_str_t                         w_prefix; /* prefix "w:" */
    ngx_uint_t                        inflight;
    ngx_queue_t                       leases;
    ngx_queue_t                       remote;
    ngx_queue_t                       remote_wait; /* connecting */
    ngx_queue_t                       held; /* actions to send again */
    ngx_rbtree_t                      remote_tree;
    ngx_rbtree_node_t                 remote_sentinel;
    ngx_event_t                       tick; /* leases, remote expiry */
    ngx_event_t                       resync;
    ngx_event_t                       hold; /* held actions: again */
    ngx_event_t                       drain; /* exits when it is done */
    ngx_msec_t                        drain_until;
    ngx_http_amonitor_bus_pt          on_message; /* set by cluster.c */
    ngx_http_amonitor_bus_ready_pt    on_ready;
    ngx_http_amonitor_bus_ready_pt    on_subscribed; /* resync */
    ngx_http_amonitor_bus_hold_pt     on_hold; /* action_route.c */
    ngx_http_amonitor_bus_rehome_pt   on_rehome; /* action_route.c */
    ngx_atomic_uint_t                 dropped; /* events not published */
    ngx_atomic_uint_t                 published;
    ngx_atomic_uint_t                 received;
    u_char                            tbuf[NGX_HTTP_AMONITOR_CLUSTER_TOKEN_LEN];
};


/* bus (cluster_bus.c) */
ngx_int_t ngx_http_amonitor_bus_init(ngx_http_amonitor_cluster_t *cl);
void      ngx_http_amonitor_bus_exit(ngx_http_amonitor_cluster_t *cl);
ngx_int_t ngx_http_amonitor_bus_publish(ngx_http_amonitor_cluster_t *cl,
    ngx_str_t *channel, u_char kind, ngx_str_t *fields, ngx_uint_t n,
    ngx_uint_t droppable);
ngx_int_t ngx_http_amonitor_bus_ready(ngx_http_amonitor_cluster_t *cl);
void      ngx_http_amonitor_bus_owner(ngx_http_amonitor_cluster_t *cl);
ngx_int_t ngx_http_amonitor_bus_pack(ngx_http_amonitor_worker_t *w, u_char kind,
    ngx_str_t *fields, ngx_uint_t n, ngx_str_t *out);

/* routes learned (cluster_learn.c) */
void ngx_http_amonitor_cluster_learn(ngx_http_amonitor_cluster_t *cl,
    ngx_str_t *id, ngx_str_t *url, ngx_str_t *origin);

/* routes and leases (cluster_route.c) */
void      ngx_http_amonitor_lease_tick(ngx_http_amonitor_cluster_t *cl);
ngx_int_t ngx_http_amonitor_routes_resync(ngx_http_amonitor_cluster_t *cl);
void ngx_http_amonitor_routes_announce_conf(ngx_http_amonitor_cluster_t *cl);
ngx_uint_t ngx_http_amonitor_cluster_mine(
    ngx_http_amonitor_cluster_t *cl, const char *p, size_t len);
void ngx_http_amonitor_lease_acquire(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_lease_t *l);
ngx_http_amonitor_lease_t *ngx_http_amonitor_lease_get(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_upstream_t *u);
void       ngx_http_amonitor_lease_exit(ngx_http_amonitor_cluster_t *cl);
ngx_uint_t ngx_http_amonitor_cluster_leases(
    ngx_http_amonitor_worker_t *w, ngx_uint_t *held);
void ngx_http_amonitor_lease_reconnected(ngx_http_amonitor_cluster_t *cl);
void ngx_http_amonitor_lease_down(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_upstream_t *u);

/* actions across workers: the asking side (cluster_forward.c; the two
 * callbacks it asks, on_hold and on_rehome, are in action_route.c) */
ngx_uint_t ngx_http_amonitor_action_holdable(ngx_http_amonitor_worker_t *w,
    ngx_str_t *target, ngx_str_t *msg_id, ngx_int_t got);
ngx_int_t  ngx_http_amonitor_action_rehome(ngx_http_amonitor_worker_t *w,
     ngx_str_t *target, ngx_str_t *msg_id, u_char *frame, size_t len);
void       ngx_http_amonitor_forward_exit(ngx_http_amonitor_cluster_t *cl);

/* actions across workers: the owner (cluster_action.c) */
void ngx_http_amonitor_remote_run(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m);
void ngx_http_amonitor_remote_expire(ngx_http_amonitor_cluster_t *cl);
void ngx_http_amonitor_remote_exit(ngx_http_amonitor_cluster_t *cl);
void ngx_http_amonitor_remote_down(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected);
void ngx_http_amonitor_remote_open(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_upstream_t *u);


#endif /* _NGX_HTTP_AMONITOR_CLUSTER_H_INCLUDED_ */
