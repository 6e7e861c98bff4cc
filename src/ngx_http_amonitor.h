/*
 * Copyright (C) AMonitor authors
 *
 * What the glue files share: configuration, the per-worker runtime and the
 * upstream (SDK connection) that the router, actions and targets look at,
 * and each file's entry points.  Structures used by one file only live in
 * that file.  Calls go one way: module -> worker -> panel / upstream ->
 * router -> action -> target -> store, with conn and reply below them.
 */

#ifndef _NGX_HTTP_AMONITOR_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_handshake.h"
#include "amon_envelope.h"
#include "ngx_http_amonitor_conn.h"


#define NGX_HTTP_AMONITOR_VERSION "0.2.0"

#define NGX_HTTP_AMONITOR_MAX_LEARNED 1000000 /* amonitor_learned_limit */
#define NGX_HTTP_AMONITOR_PANEL_DIALS 64 /* ..._dial_limit_per_panel */
#define NGX_HTTP_AMONITOR_RESULT_MAX  1024 /* stored ack result */
/* a stored record: its target's name and its result (reply.c) */
#define NGX_HTTP_AMONITOR_STORED_MAX \
    (3 + AMON_MAX_ID_LEN + NGX_HTTP_AMONITOR_RESULT_MAX)
#define NGX_HTTP_AMONITOR_CLOSE_TIMEOUT 3000
#define NGX_HTTP_AMONITOR_CLOSE_MAX     30000 /* one that reads, ms */
#define NGX_HTTP_AMONITOR_LINGER        1000 /* wait for the close, ms */
#define NGX_HTTP_AMONITOR_RECONCILE     1000 /* look at the registry, ms */
#define NGX_HTTP_AMONITOR_FIRST_DIALS   256 /* dials per pass at start */
/* new panels' snapshots per pass of the event loop: records + targets */
#define NGX_HTTP_AMONITOR_SNAPSHOT_PASS 8192
#define NGX_HTTP_AMONITOR_LOG_SUMMARY   60000 /* an outage's lines, ms */
#define NGX_HTTP_AMONITOR_REASON_LEN    160 /* why the last attempt failed */
#define NGX_HTTP_AMONITOR_DROP_LINES    10 /* a second, per target */

/*
 * The hash of names and msg_ids: tree keys, the zone's indexes.  Keyed
 * with the zone's random key (a worker takes it when it starts), since
 * panels and SDKs choose what is hashed.
 */
#define ngx_http_amonitor_hash(p, n) \
    amon_hash_keyed(&ngx_http_amonitor_hash_key, (u_char *) (p), (n))

/* an action's answer when the target's certificate did not pass */
#define NGX_HTTP_AMONITOR_TLS_FAILED \
    "TLS verification of the target failed: its certificate is not " \
    "trusted or does not match its name"

/* the message of an SDK's ack too big for its panel's encoding */
#define NGX_HTTP_AMONITOR_ACK_UNFIT \
    "the target's ack is too big for this panel's encoding " \
    "(amonitor_max_message_size): its message is left out"


typedef struct ngx_http_amonitor_worker_s   ngx_http_amonitor_worker_t;
typedef struct ngx_http_amonitor_upstream_s ngx_http_amonitor_upstream_t;
typedef struct ngx_http_amonitor_store_s    ngx_http_amonitor_store_t;
typedef struct ngx_http_amonitor_audit_s    ngx_http_amonitor_audit_t;


/* a configured target: amonitor_target ID URL [token=T] */
typedef struct {
    ngx_str_t   id;
    ngx_str_t   url; /* as written */
    ngx_str_t   norm; /* normalised, for matching */
    ngx_str_t   host_port;
    ngx_str_t   path;
    ngx_str_t   token;
    ngx_str_t   host; /* NUL-terminated, no brackets: SNI, verify */
    ngx_uint_t  tls; /* wss:// */
    ngx_addr_t *addrs;
    ngx_uint_t  naddrs;
} ngx_http_amonitor_target_conf_t;


/*
 * amonitor_allow_url: ws://host:port[/path[?query]] with "*" for any port;
 * the path (with the query) must be equal, or start with it when the
 * pattern ends with "*".  No path: "/" only, no query.
 */
typedef struct {
    ngx_str_t  pattern;
    ngx_uint_t tls; /* wss:// */
    ngx_str_t  host; /* lowercase */
    ngx_uint_t port; /* 0: any */
    ngx_str_t  path; /* "/" at least; without the final "*" */
    ngx_uint_t prefix; /* the pattern ends with "*" */
} ngx_http_amonitor_allow_t;


/*
 * amonitor_redis ADDR [db=N] [password=P] [prefix=S] [timeout=T]
 *     [lease=T] [claims=N]
 */
typedef struct {
    ngx_str_t  addr; /* as written */
    ngx_str_t  host; /* numeric, NUL-terminated */
    int        port;
    ngx_uint_t db;
    ngx_str_t  password;
    ngx_str_t  prefix;
    ngx_msec_t timeout; /* of every command, and of the connect */
    ngx_msec_t lease; /* of a pending claim, renewed by its owner */
    ngx_uint_t claims; /* open claims per worker */
} ngx_http_amonitor_redis_conf_t;


/*
 * amonitor_cluster on [lease=T] [route_ttl=T]; amonitor_instance_id NAME.
 * Without it (NULL in the main conf) nothing of the cluster runs.
 */
typedef struct {
    ngx_str_t  instance; /* unique in the cluster */
    ngx_msec_t lease; /* of a target's owner */
    ngx_msec_t route_ttl; /* a route nobody served for this long goes */
} ngx_http_amonitor_cluster_conf_t;


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
    ngx_atomic_t forbidden; /* actions outside a token's rights */
    ngx_atomic_t oversize; /* peers closed over their buffer limit */
    ngx_atomic_t redis_claims; /* open Redis claims (a gauge) */
    ngx_atomic_t redis_connections; /* usable, 0 or 1 (a gauge) */
    ngx_atomic_t redis_refused; /* actions refused at claims= */
} ngx_http_amonitor_counters_t;


/*
 * Each worker process counts in a slot of the zone of its own (taken at
 * start, given back at exit: store_state.c), a cache line or more apart
 * from the others, so that two workers never bounce one line between
 * their cores; readers add the slots up.  Gauges (panels, upstreams_open,
 * the Redis ones) go up and down in the same slot, so their sum stays
 * right; a slot whose process died without giving it back (a crash, the
 * OOM killer) has its gauges cleared by the next worker that starts.
 */
#define NGX_HTTP_AMONITOR_COUNTER_SLOTS 64

typedef union {
    ngx_http_amonitor_counters_t c;
    u_char line[ngx_align(sizeof(ngx_http_amonitor_counters_t), 128)];
} ngx_http_amonitor_counter_slot_t;


typedef struct {
    ngx_shm_zone_t                 *shm_zone;
    ngx_uint_t                      zone_kept; /* not configured: kept */
    ngx_array_t                     targets; /* target_conf_t */
    ngx_rbtree_t                   *target_ids; /* while parsing: */
    ngx_rbtree_t                   *target_urls; /* duplicates */
    ngx_array_t                     allow; /* allow_t */
    ngx_msec_t                      dedupe_ttl;
    ngx_msec_t                      ack_timeout;
    ngx_msec_t                      late_window; /* after ACK_TIMEOUT */
    ngx_msec_t                      reconnect_min;
    ngx_msec_t                      reconnect_max;
    ngx_msec_t                      ping;
    ngx_msec_t                      connect_timeout;
    size_t                          max_message;
    ngx_uint_t                      queue;
    size_t                          buffer_limit; /* per connection */
    ngx_msec_t                      learned_expire;
    ngx_uint_t                      dial_attempts; /* never open: forget */
    ngx_uint_t                      learned_limit; /* in the registry */
    ngx_uint_t                      dial_limit; /* dialed on demand */
    ngx_uint_t                      dial_limit_panel;
    ngx_http_amonitor_redis_conf_t *redis;
    ngx_http_amonitor_audit_t      *audit; /* amonitor_audit_log */
    ngx_str_t                       panel_file; /* first amonitor_panel */
    ngx_uint_t                      panel_line;
    ngx_http_amonitor_worker_t     *worker; /* this process's runtime */
    /* amonitor_ssl_*: the TLS leg to wss:// targets (upstream_ssl.c) */
    ngx_flag_t ssl_verify;
    ngx_flag_t ssl_server_name;
    ngx_uint_t ssl_protocols;
    ngx_str_t  ssl_trusted_certificate;
    ngx_str_t  ssl_name;
    ngx_str_t  ssl_certificate;
    ngx_str_t  ssl_certificate_key;
    ngx_uint_t ssl_used; /* a wss:// target or pattern */
    ngx_str_t  ssl_file; /* of the first one */
    ngx_uint_t ssl_line;
    void      *ssl; /* ngx_ssl_t, when used */

    /* amonitor_cluster (NULL: off), amonitor_instance_id */
    ngx_http_amonitor_cluster_conf_t *cluster;
    ngx_uint_t                        cluster_set; /* on or off given */
    ngx_str_t                         instance_id;
} ngx_http_amonitor_main_conf_t;


/* amonitor_panel_token TOKEN [read_only] [targets=...]: its rights */
typedef struct {
    ngx_str_t    token;
    ngx_uint_t   read_only; /* watch, never act */
    ngx_array_t *targets; /* of ngx_str_t: ids, "prefix*"; NULL: any */
} ngx_http_amonitor_rights_t;


typedef struct {
    ngx_flag_t   panel;
    ngx_array_t *panel_tokens; /* of rights_t; NULL: no token needed */
    ngx_array_t *allow_origin; /* of ngx_str_t, lowercase; NULL: any */
    ngx_flag_t   panel_snapshot;
    ngx_flag_t   status;
    ngx_flag_t   dashboard;
    ngx_str_t    dashboard_root;
    ngx_flag_t   metrics;
} ngx_http_amonitor_loc_conf_t;


/* a file of the built-in dashboard (generated from dashboard/) */
typedef struct {
    ngx_str_t name;
    ngx_str_t type;
    ngx_str_t body;
} ngx_http_amonitor_asset_t;

extern ngx_http_amonitor_asset_t ngx_http_amonitor_assets[];


typedef enum {
    NGX_HTTP_AMONITOR_UP_IDLE = 0,
    NGX_HTTP_AMONITOR_UP_CONNECTING,
    NGX_HTTP_AMONITOR_UP_HANDSHAKE,
    NGX_HTTP_AMONITOR_UP_OPEN,
    NGX_HTTP_AMONITOR_UP_BACKOFF
} ngx_http_amonitor_up_state_e;


/*
 * Lines of one kind that a peer can cause as often as it likes (an SDK's
 * dropped messages, ack timeouts): at most NGX_HTTP_AMONITOR_DROP_LINES a
 * second, so that a peer in a loop cannot fill the disk; the others are
 * counted in "quiet", which the caller says in one line later.
 */
typedef struct {
    ngx_msec_t second; /* when this second began */
    ngx_uint_t lines; /* written in it */
    ngx_uint_t quiet; /* left out, not said yet */
} ngx_http_amonitor_lines_t;


static ngx_inline ngx_uint_t
ngx_http_amonitor_lines_may(ngx_http_amonitor_lines_t *l)
{
    if (ngx_current_msec - l->second >= 1000) {
        l->second = ngx_current_msec;
        l->lines = 0;
    }

    if (l->lines >= NGX_HTTP_AMONITOR_DROP_LINES) {
        l->quiet++;
        return 0;
    }

    l->lines++;

    return 1;
}


struct ngx_http_amonitor_upstream_s {
    ngx_http_amonitor_conn_t     wc;
    ngx_http_amonitor_worker_t  *worker;
    ngx_queue_t                  queue; /* in worker->upstreams */
    ngx_str_node_t               by_id; /* in worker->upstream_ids */
    ngx_str_node_t               by_url; /* in worker->upstream_urls */
    ngx_queue_t                  learned; /* in worker->learned */
    ngx_queue_t                  dialed; /* in worker->dialed if dialer */
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
    ngx_msec_t                   touched; /* its entry in the registry */
    /* the outage as upstream_log.c reports it */
    ngx_msec_t down_since;
    ngx_msec_t summary_at;
    ngx_uint_t down_attempts;
    ngx_uint_t unreported; /* since the last line */
    size_t     reason_len;
    u_char     reason[NGX_HTTP_AMONITOR_REASON_LEN];
    void      *tstate; /* its record in the zone */
    void      *lease; /* cluster: its owner lease */
    void      *topic; /* its subscribers (subscribe.c) */
    uint32_t   hb_sent; /* hash of the msg_id of the last heartbeat
                           fanned out (fanout.c's snapshot filter) */
    ngx_uint_t dialer; /* on demand: the number of the panel */
    /* wss://: upstream_ssl.c */
    ngx_str_t host; /* NUL-terminated, no brackets: SNI, verify */
    void     *ssl_session; /* to resume */
    void (*ssl_done)(ngx_http_amonitor_upstream_t *u, ngx_int_t rc);
    ngx_uint_t ssl_log_level; /* error_log's, while upstream_ssl.c reads */
    size_t     ssl_error_len; /* nginx's line on this attempt's TLS */
    u_char     ssl_error[NGX_HTTP_AMONITOR_REASON_LEN];
    unsigned   tls : 1;
    unsigned   tls_failed : 1; /* the last certificate did not pass */
    unsigned   ssl_handshaked : 1; /* this attempt's */
    unsigned   ssl_cleanup : 1;
    unsigned   dynamic : 1;
    unsigned   registered : 1; /* learned from a register */
    unsigned   stopped : 1;
    unsigned   held : 1; /* learned, open in another worker: keep dialing */
    unsigned   down : 1; /* an outage was logged */
    unsigned   answered : 1; /* a message since open */
    unsigned   remote_up : 1; /* cluster: up at its owner, counted */
    unsigned   handed_over : 1; /* cluster: closing, another holds it */
    unsigned   route_differs : 1; /* cluster: said, another URL or id */
    unsigned   remote_unsure : 1; /* cluster: bus lost, owner asked */
    unsigned   remote_told_down : 1; /* cluster: panels told, not owner */
    unsigned   first_dial : 1; /* not dialed yet: in first_dials' passes */
    unsigned   listed : 1; /* learned: in the registry read whole */
    /* lines about its dropped messages (ngx_http_amonitor_upstream_say) */
    ngx_http_amonitor_lines_t drop_lines;
};


/* how many messages of the SDK were dropped without a line: said now */
static ngx_inline void
ngx_http_amonitor_upstream_say_quiet(ngx_http_amonitor_upstream_t *u)
{
    if (u->drop_lines.quiet) {
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: %ui more messages of the SDK were dropped without a "
            "line each (at most %d lines a second)",
            u->drop_lines.quiet, NGX_HTTP_AMONITOR_DROP_LINES);
        u->drop_lines.quiet = 0;
    }
}


/*
 * May a line about a message of the SDK that is dropped (invalid, the
 * agent's own type, an ack for no action of its) be written?  At most
 * NGX_HTTP_AMONITOR_DROP_LINES a second per target, so that an SDK in a
 * loop cannot fill the disk; the others are counted, and their number is
 * said before the next line that is written or when the connection ends.
 */
static ngx_inline ngx_uint_t
ngx_http_amonitor_upstream_say(ngx_http_amonitor_upstream_t *u)
{
    if (!ngx_http_amonitor_lines_may(&u->drop_lines)) {
        return 0;
    }

    ngx_http_amonitor_upstream_say_quiet(u);

    return 1;
}


/*
 * What lower layers need from upstream.c without calling up into it:
 * dialing a target learned at run time, and connecting now rather than
 * when the backoff delay ends.  Set by worker.c.
 */
typedef ngx_http_amonitor_upstream_t *(*ngx_http_amonitor_dial_pt)(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *wu);
typedef void (*ngx_http_amonitor_kick_pt)(ngx_http_amonitor_upstream_t *u);
typedef void (*ngx_http_amonitor_drop_pt)(
    ngx_http_amonitor_upstream_t *u, const char *reason);


struct ngx_http_amonitor_worker_s {
    ngx_cycle_t                   *cycle;
    ngx_http_amonitor_main_conf_t *amcf;
    ngx_http_amonitor_store_t     *store;
    ngx_http_amonitor_counters_t  *counters;
    ngx_http_amonitor_frames_t     frames;
    ngx_queue_t                    panels; /* conn_t.queue */
    ngx_queue_t                    lingering; /* closing panels: queue */
    ngx_queue_t                    upstreams;
    ngx_rbtree_t                   upstream_ids; /* upstream_t.by_id */
    ngx_rbtree_node_t              upstream_ids_sentinel;
    ngx_rbtree_t                   upstream_urls; /* upstream_t.by_url */
    ngx_rbtree_node_t              upstream_urls_sentinel;
    ngx_queue_t                    learned; /* upstream_t.learned */
    ngx_queue_t                    dialed; /* upstream_t.dialed */
    void                          *actions; /* action.c's table */
    void                          *subs; /* subscribe.c's lists */
    ngx_queue_t                    queries; /* query.c: answers due */
    amon_buf_t                     scratch; /* envelopes we build */
    amon_buf_t                     convert; /* the other encoding */
    ngx_uint_t                     panel_seq;
    ngx_uint_t                     unconverted; /* fanout drops */
    ngx_uint_t                     ndynamic; /* learned upstreams */
    ngx_msec_t                     starved_logged; /* no connection left */
    ngx_uint_t                     nofile; /* RLIMIT_NOFILE; 0: none */
    ngx_uint_t                     fd_base; /* descriptors not of connections */
    ngx_event_t                    reconcile;
    ngx_event_t                    first_dials; /* at start, in passes */
    ngx_uint_t                     upstreams_gen; /* changes of the list */
    void                          *told; /* fanout_told.c's cache */
    ngx_uint_t                     snapshot_spent; /* in this pass */
    ngx_event_t                    snapshot_pass; /* posted: a new pass */
    ngx_uint_t                     registry_seq; /* change log read */
    ngx_uint_t                     registry_synced; /* read it whole */
    ngx_http_amonitor_dial_pt      dial;
    ngx_http_amonitor_kick_pt      kick;
    ngx_http_amonitor_drop_pt      drop; /* forget a learned target */
    ngx_http_amonitor_kick_pt      hangup; /* close: the lease is lost */
    ngx_http_amonitor_kick_pt      settled; /* the lease is another's */
    void                          *cluster; /* NULL: not in a cluster */
    amon_allocator_t               allocator;
    /* lines of ack timeouts (action_end.c), at most DROP_LINES a second */
    ngx_http_amonitor_lines_t noack_lines;
};


extern ngx_module_t    ngx_http_amonitor_module;
extern amon_hash_key_t ngx_http_amonitor_hash_key;


/*
 * How many ack timeouts had no line of their own: said at the next one
 * written and by the worker's tick (a second at most after the last).
 */
static ngx_inline void
ngx_http_amonitor_noack_say_quiet(ngx_http_amonitor_worker_t *w)
{
    if (w->noack_lines.quiet) {
        ngx_log_error(NGX_LOG_ERR, w->cycle->log, 0,
            "amonitor: no ack within %M ms for %ui more actions, without "
            "a line each (at most %d lines a second)",
            w->amcf->ack_timeout, w->noack_lines.quiet,
            NGX_HTTP_AMONITOR_DROP_LINES);
        w->noack_lines.quiet = 0;
    }
}


/*
 * The next reconnect delay: half fixed, half random, so that workers do
 * not reconnect in lockstep; the base doubles up to amonitor_reconnect max.
 * Shared by SDK and Redis reconnects.
 */
static ngx_inline ngx_msec_t
ngx_http_amonitor_backoff(
    ngx_http_amonitor_main_conf_t *amcf, ngx_msec_t *backoff)
{
    ngx_msec_t delay;

    delay = *backoff / 2 + (ngx_msec_t) ngx_random() % (*backoff / 2 + 1);
    *backoff = ngx_min(*backoff * 2, amcf->reconnect_max);

    return delay;
}


/* the message a reply answers */
typedef struct {
    ngx_str_t  msg_id;
    ngx_str_t  trace_id;
    ngx_str_t  target_id; /* the target it concerns, the agent's name */
    ngx_uint_t binary; /* answer in protobuf */
    ngx_uint_t action; /* it is an action: "action_msg_id", "final" */
} ngx_http_amonitor_about_t;


/*
 * Peer data for a log line: control characters (a forged "\n...[emerg]"),
 * '\' and '"' (the value is quoted in the line) become \xNN and long
 * values are cut, into "buf" of "size" bytes.
 */
#define NGX_HTTP_AMONITOR_LOG_STR 256

static ngx_inline ngx_str_t *
ngx_http_amonitor_log_str(
    ngx_str_t *in, ngx_str_t *out, u_char *buf, size_t size)
{
    u_char     *p, *last;
    size_t      i;
    static char hex[] = "0123456789abcdef";

    p = buf;
    last = buf + size;

    for (i = 0; i < in->len && p + 4 <= last; i++) {
        if (in->data[i] < 0x20 || in->data[i] == 0x7f || in->data[i] == '\\'
            || in->data[i] == '"') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[in->data[i] >> 4];
            *p++ = hex[in->data[i] & 0xf];

        } else {
            *p++ = in->data[i];
        }
    }

    out->data = buf;
    out->len = p - buf;

    return out;
}


/* target_conf.c: amonitor_target, amonitor_reconnect, amonitor_allow_url */
char *ngx_http_amonitor_conf_target(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_amonitor_conf_reconnect(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_amonitor_conf_allow_url(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* upstream_ssl.c: amonitor_ssl_* */
extern ngx_conf_bitmask_t ngx_http_amonitor_ssl_protocols[];
char *ngx_http_amonitor_check_not_empty(ngx_conf_t *cf, void *post, void *data);
char *ngx_http_amonitor_conf_protocols(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_amonitor_ssl_init_conf(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf);

/* worker.c: the per-process runtime */
ngx_int_t ngx_http_amonitor_worker_init(
    ngx_cycle_t *cycle, ngx_http_amonitor_main_conf_t *amcf);
void ngx_http_amonitor_worker_exit(ngx_http_amonitor_main_conf_t *amcf);

/* panel.c: the handshake; panel_run.c: the connection after it */
ngx_int_t ngx_http_amonitor_panel_handler(ngx_http_request_t *r);
char     *ngx_http_amonitor_panel_conf(ngx_conf_t *cf, void *post, void *data);
char     *ngx_http_amonitor_panel_allow_origin(
        ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_amonitor_panel_start(ngx_http_request_t *r,
    ngx_http_amonitor_main_conf_t *amcf, ngx_uint_t encoding,
    ngx_array_t *targets, ngx_http_amonitor_rights_t *rights);
void      ngx_http_amonitor_panel_close_all(ngx_http_amonitor_worker_t *w);

/* upstream.c */
ngx_int_t ngx_http_amonitor_upstream_init_worker(ngx_http_amonitor_worker_t *w);
void      ngx_http_amonitor_upstream_exit_worker(ngx_http_amonitor_worker_t *w);
ngx_http_amonitor_upstream_t *ngx_http_amonitor_upstream_add(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *wu);
void ngx_http_amonitor_upstream_kick(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_upstream_drop(
    ngx_http_amonitor_upstream_t *u, const char *reason);
void ngx_http_amonitor_upstream_hangup(ngx_http_amonitor_upstream_t *u);

/* router.c: messages in both directions */
void ngx_http_amonitor_router_panel_message(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_router_panel_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc);
ngx_uint_t ngx_http_amonitor_fanout_snapshot(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc);
ngx_uint_t ngx_http_amonitor_fanout_snapshot_later(
    ngx_http_amonitor_worker_t *w);
void ngx_http_amonitor_fanout_panel_gone(ngx_http_amonitor_conn_t *wc);
void ngx_http_amonitor_router_upstream_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_router_upstream_open(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_router_remote_unconfirmed(
    ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_router_remote_held(ngx_http_amonitor_upstream_t *u);
ngx_uint_t ngx_http_amonitor_router_remote_seed(
    ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_router_remote_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_router_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected);

/* action.c: the life of an action, from the claim to its one answer */
ngx_int_t ngx_http_amonitor_action_init_worker(ngx_http_amonitor_worker_t *w);
void      ngx_http_amonitor_action_exit_worker(ngx_http_amonitor_worker_t *w);
void      ngx_http_amonitor_action_exit_remote(ngx_http_amonitor_worker_t *w);
void      ngx_http_amonitor_action_start(ngx_http_amonitor_worker_t *w,
         ngx_http_amonitor_conn_t *panel, amon_envelope_t *env, ngx_uint_t opcode,
         u_char *data, size_t len);
void      ngx_http_amonitor_action_ack(ngx_http_amonitor_upstream_t *u,
         amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len);
void      ngx_http_amonitor_action_panel_gone(
         ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *panel);
void ngx_http_amonitor_action_upstream_open(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_action_lease_settled(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_action_remote_error(ngx_http_amonitor_upstream_t *u,
    ngx_str_t *msg_id, const char *code, const char *message);
void ngx_http_amonitor_action_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected);
void ngx_http_amonitor_action_upstream_gone(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_action_upstream_forgotten(
    ngx_http_amonitor_upstream_t *u);

/* query.c: action_status, and acks that wait for their finish */
void ngx_http_amonitor_query_start(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env,
    ngx_http_amonitor_about_t *about);
void ngx_http_amonitor_query_answer_stored(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_str_t *msg_id, ngx_uint_t opcode,
    u_char *data, size_t len);
void ngx_http_amonitor_query_panel_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *panel);
void ngx_http_amonitor_query_exit_worker(ngx_http_amonitor_worker_t *w);

/* target.c: finding and learning targets */
typedef enum {
    NGX_HTTP_AMONITOR_LEARN_OK = 0,
    NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED, /* by amonitor_allow_url */
    NGX_HTTP_AMONITOR_LEARN_FULL, /* too many learned targets */
    NGX_HTTP_AMONITOR_LEARN_NO_ROOM, /* no memory left in the zone */
    NGX_HTTP_AMONITOR_LEARN_NO_ADDR, /* cannot dial: not an IP address */
    NGX_HTTP_AMONITOR_LEARN_BAD_ID, /* control characters in the id */
    NGX_HTTP_AMONITOR_LEARN_DIAL_LIMIT, /* amonitor_dial_limit */
    NGX_HTTP_AMONITOR_LEARN_PANEL_LIMIT, /* amonitor_dial_limit_per_panel */
    NGX_HTTP_AMONITOR_LEARN_TAKEN, /* the id is a registered SDK's */
    NGX_HTTP_AMONITOR_LEARN_TOO_LONG /* the URL longer than the registry keeps */
} ngx_http_amonitor_learn_e;

ngx_http_amonitor_upstream_t *ngx_http_amonitor_target_find(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id);
ngx_http_amonitor_upstream_t *ngx_http_amonitor_target_find_url(
    ngx_http_amonitor_worker_t *w, ngx_str_t *norm);
ngx_int_t ngx_http_amonitor_target_url(
    u_char *data, size_t len, amon_ws_url_t *wu, ngx_str_t *norm);
ngx_int_t ngx_http_amonitor_target_name(
    ngx_str_t *id, ngx_str_t *url, ngx_str_t *name);
ngx_http_amonitor_learn_e ngx_http_amonitor_target_learn(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *wu,
    ngx_str_t *norm, ngx_uint_t kind, ngx_uint_t dialer,
    ngx_http_amonitor_upstream_t **up);
ngx_uint_t ngx_http_amonitor_target_allowed(
    ngx_http_amonitor_worker_t *w, amon_ws_url_t *wu);
ngx_int_t ngx_http_amonitor_target_resolve(ngx_http_amonitor_worker_t *w,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t dial, ngx_uint_t dialer,
    ngx_http_amonitor_upstream_t **up, const char **code, const char **message);
void      ngx_http_amonitor_target_kick(ngx_http_amonitor_upstream_t *u);
void      ngx_http_amonitor_target_failed(ngx_http_amonitor_upstream_t *u);

/*
 * cluster*.c: amonitor_cluster.  The calls below return at once (and do
 * nothing, may_dial says 1) when the worker is not in a cluster.
 */
char *ngx_http_amonitor_cluster_conf(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_amonitor_cluster_check(
    ngx_conf_t *cf, ngx_http_amonitor_main_conf_t *amcf);
ngx_int_t  ngx_http_amonitor_cluster_init(ngx_http_amonitor_worker_t *w);
void       ngx_http_amonitor_cluster_exit(ngx_http_amonitor_worker_t *w);
ngx_uint_t ngx_http_amonitor_cluster_may_dial(ngx_http_amonitor_upstream_t *u);
ngx_uint_t ngx_http_amonitor_cluster_quit(ngx_http_amonitor_worker_t *w);
void       ngx_http_amonitor_cluster_forget(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_cluster_upstream_open(ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_cluster_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected);
void      ngx_http_amonitor_cluster_event(ngx_http_amonitor_upstream_t *u,
         ngx_uint_t opcode, u_char *data, size_t len);
void      ngx_http_amonitor_cluster_route(ngx_http_amonitor_worker_t *w,
         ngx_str_t *id, ngx_str_t *url, const char *origin);
ngx_int_t ngx_http_amonitor_cluster_forward(ngx_http_amonitor_upstream_t *u,
    ngx_str_t *msg_id, ngx_http_amonitor_msg_t *frame);
ngx_int_t ngx_http_amonitor_cluster_ack(ngx_http_amonitor_upstream_t *u,
    ngx_str_t *msg_id, ngx_uint_t opcode, u_char *data, size_t len);

/* reply.c: the agent's own envelopes */
#define ngx_http_amonitor_amon_str(s) \
    { \
        (const unsigned char *) (s)->data, (s)->len \
    }


/* an ngx_str_t as an amon_str_t; empty ones are absent */
static ngx_inline amon_str_t
ngx_http_amonitor_amon_opt(ngx_str_t *s)
{
    amon_str_t r;

    r.data = (s->len) ? s->data : NULL;
    r.len = s->len;

    return r;
}


int64_t   ngx_http_amonitor_reply_now(void);
void      ngx_http_amonitor_reply_uuid(u_char *out);
void      ngx_http_amonitor_reply_send(ngx_http_amonitor_worker_t *w,
         ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about, int rc);
void      ngx_http_amonitor_reply_error(ngx_http_amonitor_worker_t *w,
         ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
         const char *code, const char *message, ngx_uint_t final);
void      ngx_http_amonitor_reply_duplicate(ngx_http_amonitor_worker_t *w,
         ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
         const char *state, ngx_str_t *original, ngx_uint_t final);
void      ngx_http_amonitor_reply_status(ngx_http_amonitor_worker_t *w,
         ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
         ngx_str_t *action_msg_id, const char *state, ngx_str_t *result);
ngx_int_t ngx_http_amonitor_reply_stamp(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, ngx_uint_t opcode,
    u_char *data, size_t len, ngx_uint_t final, ngx_str_t *out);
ngx_int_t ngx_http_amonitor_reply_convert(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, ngx_uint_t final,
    ngx_str_t *out);
ngx_int_t ngx_http_amonitor_reply_ack_unfit(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t binary, ngx_str_t *out);
ngx_http_amonitor_msg_t *ngx_http_amonitor_reply_target_status(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_upstream_t *u,
    const char *state, const char *reason);
ngx_int_t ngx_http_amonitor_reply_target_state(ngx_http_amonitor_worker_t *w,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t up, int64_t since,
    ngx_str_t *reason, ngx_str_t *out);
void      ngx_http_amonitor_reply_result(ngx_str_t *result, size_t size,
         ngx_uint_t success, amon_str_t message, const char *code,
         amon_str_t action_msg_id);
ngx_int_t ngx_http_amonitor_stored_error(ngx_str_t *stored, ngx_str_t *target,
    const char *code, const char *message);
void      ngx_http_amonitor_stored_pack(
         ngx_str_t *out, ngx_str_t *target, ngx_str_t *result);
void ngx_http_amonitor_stored_unpack(
    ngx_str_t *stored, ngx_str_t *target, ngx_str_t *result);

/* status.c */
ngx_int_t ngx_http_amonitor_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_amonitor_status_send(
    ngx_http_request_t *r, ngx_buf_t *b, const char *type);
ngx_int_t ngx_http_amonitor_not_allowed(ngx_http_request_t *r);
char     *ngx_http_amonitor_conf_handler(
        ngx_conf_t *cf, ngx_http_handler_pt handler);

/* rights.c: who may act */
char *ngx_http_amonitor_conf_panel_token(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_http_amonitor_rights_t *ngx_http_amonitor_rights_auth(
    ngx_http_request_t *r, ngx_array_t *tokens);
const char *ngx_http_amonitor_rights_check(
    ngx_http_amonitor_rights_t *rt, ngx_str_t *id);
ngx_uint_t ngx_http_amonitor_rights_cover(
    ngx_http_amonitor_rights_t *rt, ngx_str_t *id);

/* audit.c: one line per action outcome */
typedef struct {
    ngx_str_t      panel; /* address; empty: gone */
    ngx_str_t      token; /* empty: none */
    ngx_str_t      target;
    ngx_str_t      action;
    ngx_str_t      msg_id;
    const char    *outcome;
    const char    *code; /* NULL: none */
    ngx_msec_int_t rtt; /* < 0: not known */
} ngx_http_amonitor_audit_rec_t;

char *ngx_http_amonitor_audit_log(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_amonitor_audit(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_audit_rec_t *rec);
void ngx_http_amonitor_audit_exit(ngx_http_amonitor_main_conf_t *amcf);

/* metrics.c */
ngx_int_t ngx_http_amonitor_metrics_handler(ngx_http_request_t *r);

/* dashboard.c */
char *ngx_http_amonitor_dashboard(
    ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_amonitor_dashboard_handler(ngx_http_request_t *r);
extern ngx_conf_post_t ngx_http_amonitor_dashboard_root_post;


#endif /* _NGX_HTTP_AMONITOR_H_INCLUDED_ */
