/*
 * Copyright (C) AMonitor authors
 *
 * Shared declarations of ngx_http_amonitor_module: configuration, the
 * per-worker runtime, WebSocket connections with their bounded send queues,
 * panels, upstreams (SDK connections) and the router between them.
 */

#ifndef _NGX_HTTP_AMONITOR_MODULE_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"
#include "amon_envelope.h"


#define NGX_HTTP_AMONITOR_VERSION "0.1.0"

#define NGX_HTTP_AMONITOR_RBUF_SIZE     65536
#define NGX_HTTP_AMONITOR_Q_MIN         16
#define NGX_HTTP_AMONITOR_RESERVED_Q    64 /* for acks and errors */
#define NGX_HTTP_AMONITOR_MSG_CACHE     256 /* free small buffers */
#define NGX_HTTP_AMONITOR_MSG_SMALL     4096
#define NGX_HTTP_AMONITOR_MAX_DYNAMIC   64 /* learned targets */
#define NGX_HTTP_AMONITOR_RESULT_MAX    1024 /* stored ack result */
#define NGX_HTTP_AMONITOR_CLOSE_TIMEOUT 3000
#define NGX_HTTP_AMONITOR_LINGER        1000 /* wait for the close, ms */
#define NGX_HTTP_AMONITOR_READS         8 /* reads per event */
#define NGX_HTTP_AMONITOR_IOVS          64 /* frames per send_chain */


typedef struct ngx_http_amonitor_worker_s   ngx_http_amonitor_worker_t;
typedef struct ngx_http_amonitor_conn_s     ngx_http_amonitor_conn_t;
typedef struct ngx_http_amonitor_panel_s    ngx_http_amonitor_panel_t;
typedef struct ngx_http_amonitor_upstream_s ngx_http_amonitor_upstream_t;
typedef struct ngx_http_amonitor_pending_s  ngx_http_amonitor_pending_t;
typedef struct ngx_http_amonitor_store_s    ngx_http_amonitor_store_t;


/* a configured target: amonitor_target ID URL [token=T] */
typedef struct {
    ngx_str_t   id;
    ngx_str_t   url; /* as written */
    ngx_str_t   norm; /* normalised, for matching */
    ngx_str_t   host_port;
    ngx_str_t   path;
    ngx_str_t   token;
    ngx_addr_t *addrs;
    ngx_uint_t  naddrs;
} ngx_http_amonitor_target_conf_t;


/* amonitor_allow_url: scheme://host:port with "*" for any port */
typedef struct {
    ngx_str_t  pattern;
    ngx_str_t  host; /* lowercase */
    ngx_uint_t port; /* 0: any */
    ngx_str_t  path; /* empty: any */
} ngx_http_amonitor_allow_t;


/* amonitor_redis ADDR [db=N] [password=P] [prefix=S] */
typedef struct {
    ngx_str_t  addr; /* as written */
    ngx_str_t  host; /* numeric, NUL-terminated */
    int        port;
    ngx_uint_t db;
    ngx_str_t  password;
    ngx_str_t  prefix;
} ngx_http_amonitor_redis_conf_t;


/* counters kept in the zone, shared by all workers */
typedef struct {
    ngx_atomic_t panels;
    ngx_atomic_t upstreams_open;
    ngx_atomic_t forwarded;
    ngx_atomic_t dropped;
    ngx_atomic_t actions;
    ngx_atomic_t duplicates;
    ngx_atomic_t acks;
    ngx_atomic_t errors;
    ngx_atomic_t ack_timeouts;
    ngx_atomic_t evictions;
    ngx_atomic_t invalid;
} ngx_http_amonitor_counters_t;


typedef struct {
    ngx_shm_zone_t                 *shm_zone;
    ngx_array_t                     targets; /* target_conf_t */
    ngx_array_t                     allow; /* allow_t */
    ngx_msec_t                      dedupe_ttl;
    ngx_msec_t                      ack_timeout;
    ngx_msec_t                      reconnect_min;
    ngx_msec_t                      reconnect_max;
    ngx_msec_t                      ping;
    ngx_msec_t                      connect_timeout;
    size_t                          max_message;
    ngx_uint_t                      queue;
    ngx_http_amonitor_redis_conf_t *redis;
    ngx_str_t                       panel_file; /* first amonitor_panel */
    ngx_uint_t                      panel_line;
    ngx_http_amonitor_worker_t     *worker; /* this process's runtime */
} ngx_http_amonitor_main_conf_t;


typedef struct {
    ngx_flag_t panel;
    ngx_str_t  panel_token;
    ngx_flag_t status;
} ngx_http_amonitor_loc_conf_t;


/*
 * A frame shared by reference: server frames are unmasked, so the same
 * bytes serve every panel.  Freed (or cached) when the last queue drops it.
 */
typedef struct {
    ngx_uint_t  refs;
    size_t      len;
    size_t      size;
    u_char     *data;
    ngx_queue_t queue; /* in the free cache */
} ngx_http_amonitor_msg_t;


typedef struct {
    ngx_http_amonitor_msg_t *msg;
    size_t                   sent; /* bytes already written */
} ngx_http_amonitor_qitem_t;


typedef void (*ngx_http_amonitor_message_pt)(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
typedef void (*ngx_http_amonitor_close_pt)(ngx_http_amonitor_conn_t *wc);


/* one WebSocket connection, either side */
struct ngx_http_amonitor_conn_s {
    ngx_connection_t           *connection;
    ngx_http_amonitor_worker_t *worker;
    void                       *data; /* panel or upstream */

    amon_ws_parser_t parser;
    size_t           rbuf_pos; /* in worker->rbuf */
    size_t           rbuf_last;
    amon_buf_t       message; /* fragments, reused */

    ngx_http_amonitor_qitem_t *q;
    ngx_uint_t                 q_size; /* limit + reserved */
    ngx_uint_t                 q_cap; /* allocated entries */
    ngx_uint_t                 q_limit; /* for droppable frames */
    ngx_uint_t                 q_head;
    ngx_uint_t                 q_count;
    uint64_t                   queued_bytes;
    uint64_t                   sent_bytes;

    ngx_event_t ping;
    ngx_msec_t  last_rx;

    ngx_http_amonitor_message_pt on_message;
    ngx_http_amonitor_close_pt   on_close;

    ngx_uint_t dropped;
    ngx_uint_t log_level; /* for peer faults */
    ngx_uint_t peer_close; /* code the peer sent */

    unsigned client : 1; /* mask what we send */
    unsigned open : 1;
    unsigned close_sent : 1;
    unsigned close_received : 1;
    unsigned awaiting_pong : 1;
    unsigned closed : 1;
};


struct ngx_http_amonitor_panel_s {
    ngx_http_amonitor_conn_t wc;
    ngx_http_request_t      *request;
    ngx_queue_t              queue; /* in worker->panels */
    ngx_uint_t               id;
    ngx_uint_t               pending; /* actions awaiting acks */
    unsigned                 in_handler : 1;
    unsigned                 lingering : 1;
    unsigned                 finalized : 1;
};


typedef enum {
    NGX_HTTP_AMONITOR_UP_IDLE = 0,
    NGX_HTTP_AMONITOR_UP_CONNECTING,
    NGX_HTTP_AMONITOR_UP_HANDSHAKE,
    NGX_HTTP_AMONITOR_UP_OPEN,
    NGX_HTTP_AMONITOR_UP_BACKOFF
} ngx_http_amonitor_up_state_e;


struct ngx_http_amonitor_upstream_s {
    ngx_http_amonitor_conn_t     wc;
    ngx_queue_t                  queue; /* in worker->upstreams */
    ngx_str_t                    id;
    ngx_str_t                    norm;
    ngx_str_t                    host_port;
    ngx_str_t                    path;
    ngx_str_t                    token;
    ngx_addr_t                  *addrs;
    ngx_uint_t                   naddrs;
    ngx_uint_t                   next_addr;
    ngx_peer_connection_t        peer;
    ngx_pool_t                  *pool; /* lives as long as this */
    ngx_log_t                    log;
    ngx_event_t                  reconnect;
    ngx_msec_t                   backoff;
    ngx_http_amonitor_up_state_e state;
    u_char                       key[AMON_WS_KEY_LEN];
    ngx_buf_t                   *hs; /* handshake in/out */
    ngx_queue_t                  waiting; /* actions until open */
    ngx_uint_t                   failures;
    ngx_msec_t                   opened;
    unsigned                     dynamic : 1;
    unsigned                     stopped : 1;
};


/* an action on its way: from the claim to the ack (or its end) */
struct ngx_http_amonitor_pending_s {
    ngx_str_node_t                sn; /* msg_id, crc32 key */
    ngx_queue_t                   queue; /* upstream->waiting */
    ngx_queue_t                   all; /* worker->pending_all */
    ngx_http_amonitor_panel_t    *panel; /* NULL once gone */
    ngx_uint_t                    panel_id;
    ngx_http_amonitor_upstream_t *upstream;
    ngx_event_t                   timer;
    uint64_t                      end_offset; /* in upstream bytes */
    ngx_str_t                     target_id;
    ngx_str_t                     target_url;
    ngx_http_amonitor_worker_t   *worker;
    ngx_http_amonitor_msg_t      *msg; /* the action's frame */
    unsigned                      binary : 1;
    unsigned                      in_tree : 1;
    unsigned                      sent : 1;
    unsigned                      timed_out : 1;
    unsigned                      waiting : 1;
    unsigned                      claiming : 1; /* store answer due */
    unsigned                      abandoned : 1; /* freed on its answer */
};


struct ngx_http_amonitor_worker_s {
    ngx_cycle_t                   *cycle;
    ngx_http_amonitor_main_conf_t *amcf;
    ngx_http_amonitor_store_t     *store;
    ngx_http_amonitor_counters_t  *counters;
    ngx_queue_t                    panels;
    ngx_queue_t                    upstreams;
    ngx_rbtree_t                   pending;
    ngx_rbtree_node_t              pending_sentinel;
    ngx_queue_t                    pending_all;
    amon_buf_t                     scratch; /* envelopes we build */
    u_char                        *rbuf; /* every connection reads here */
    size_t                         rbuf_size;
    ngx_queue_t                    msg_cache;
    ngx_uint_t                     msg_cached;
    ngx_uint_t                     panel_seq;
    ngx_uint_t                     ndynamic; /* learned upstreams */
    ngx_event_t                    reconcile;
    ngx_uint_t                     registry_gen;
    amon_allocator_t               allocator;
};


extern ngx_module_t ngx_http_amonitor_module;


/* module.c */
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_alloc(
    ngx_http_amonitor_worker_t *w, size_t size);
void ngx_http_amonitor_msg_release(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_msg_t *msg);
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_frame(
    ngx_http_amonitor_worker_t *w, ngx_uint_t opcode, u_char *payload,
    size_t len, ngx_uint_t masked);
ngx_msec_t ngx_http_amonitor_backoff(
    ngx_http_amonitor_main_conf_t *amcf, ngx_msec_t *backoff);
ngx_int_t ngx_http_amonitor_url_allowed(
    ngx_http_amonitor_main_conf_t *amcf, amon_ws_url_t *u);

/* conn.c */
ngx_int_t ngx_http_amonitor_conn_init(ngx_http_amonitor_conn_t *wc,
    ngx_connection_t *c, ngx_pool_t *pool, ngx_http_amonitor_worker_t *w,
    ngx_uint_t client);
void      ngx_http_amonitor_conn_read(ngx_http_amonitor_conn_t *wc);
ngx_int_t ngx_http_amonitor_conn_feed(
    ngx_http_amonitor_conn_t *wc, u_char *data, size_t len);
ngx_int_t ngx_http_amonitor_conn_flush(ngx_http_amonitor_conn_t *wc);
ngx_int_t ngx_http_amonitor_conn_send(ngx_http_amonitor_conn_t *wc,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t priority);
ngx_int_t ngx_http_amonitor_conn_send_data(ngx_http_amonitor_conn_t *wc,
    ngx_uint_t opcode, u_char *data, size_t len, ngx_uint_t priority);
void      ngx_http_amonitor_conn_close_frame(
         ngx_http_amonitor_conn_t *wc, ngx_uint_t code, const char *reason);
void ngx_http_amonitor_conn_fail(ngx_http_amonitor_conn_t *wc, int rc);
void ngx_http_amonitor_conn_free(ngx_http_amonitor_conn_t *wc);
void ngx_http_amonitor_conn_start_ping(
    ngx_http_amonitor_conn_t *wc, ngx_msec_t interval);

/* panel.c */
ngx_int_t ngx_http_amonitor_panel_handler(ngx_http_request_t *r);
void      ngx_http_amonitor_panel_broadcast(
         ngx_http_amonitor_worker_t *w, ngx_http_amonitor_msg_t *msg);
void ngx_http_amonitor_panel_send_data(
    ngx_http_amonitor_panel_t *p, ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_panel_close_all(ngx_http_amonitor_worker_t *w);

/* upstream.c */
ngx_int_t ngx_http_amonitor_upstream_init_worker(ngx_http_amonitor_worker_t *w);
void      ngx_http_amonitor_upstream_exit_worker(ngx_http_amonitor_worker_t *w);
void      ngx_http_amonitor_upstream_kick(ngx_http_amonitor_upstream_t *u);
ngx_http_amonitor_upstream_t *ngx_http_amonitor_upstream_find(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id);
ngx_http_amonitor_upstream_t *ngx_http_amonitor_upstream_find_url(
    ngx_http_amonitor_worker_t *w, ngx_str_t *norm);
ngx_http_amonitor_upstream_t *ngx_http_amonitor_upstream_add(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *u);

/* router.c */
void ngx_http_amonitor_router_panel_message(
    ngx_http_amonitor_panel_t *p, ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_router_upstream_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_router_panel_gone(ngx_http_amonitor_panel_t *p);
void ngx_http_amonitor_router_exit_worker(ngx_http_amonitor_worker_t *w);
void ngx_http_amonitor_router_upstream_open(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_router_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected);

/* status.c */
ngx_int_t ngx_http_amonitor_status_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_AMONITOR_MODULE_H_INCLUDED_ */
