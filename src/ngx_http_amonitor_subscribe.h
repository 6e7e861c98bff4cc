/*
 * Copyright (C) AMonitor authors
 *
 * What a panel receives: the targets it subscribed to.  The router walks
 * the panels that take everything and the subscribers of the target a
 * frame is about, never every panel.
 */

#ifndef _NGX_HTTP_AMONITOR_SUBSCRIBE_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_SUBSCRIBE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"


#define NGX_HTTP_AMONITOR_SUB_MAX 256 /* ids and patterns per panel */

/*
 * Different patterns per worker, whatever the panels using each: a target
 * seen for the first time is matched against each of them once.
 */
#define NGX_HTTP_AMONITOR_SUB_GLOBS 10000
#define NGX_HTTP_AMONITOR_SUB_TOO_MANY_GLOBS \
    "too many different patterns on this worker (at most 10000): " \
    "use patterns other panels use, or ids"

/*
 * A set's patterns are matched when it is made, each against the served
 * targets whose ids start with its text before the first "*" (every one
 * for a leading "*"): a panel may make at most BURST pattern x target
 * matches at once and RATE a second on average; a set that costs more
 * than BURST is refused, one that comes too soon after others is
 * RATE_LIMITED.  The snapshot that follows a subscribe is paid from the
 * same budget (one per id or record examined, one more per target
 * told), after it is sent: a panel in debt waits, whatever its next set.
 */
#define NGX_HTTP_AMONITOR_SUB_MATCH_RATE  50000
#define NGX_HTTP_AMONITOR_SUB_MATCH_BURST 200000
#define NGX_HTTP_AMONITOR_SUB_TOO_COSTLY \
    "more patterns than the targets served allow: patterns x targets " \
    "may be at most 200000"


/* a target id, served or only named by a panel, and its subscribers */
typedef struct ngx_http_amonitor_topic_s ngx_http_amonitor_topic_t;

struct ngx_http_amonitor_topic_s {
    ngx_http_amonitor_topic_t    *next; /* in its hash bucket */
    ngx_queue_t                   links; /* ngx_http_amonitor_link_t.target */
    ngx_http_amonitor_upstream_t *upstream; /* NULL: not served (yet) */
    ngx_uint_t                    stamp; /* last subscribe that linked it */
    uint32_t                      hash;
    ngx_str_t                     id;
};


/* one panel subscribed to one topic */
typedef struct {
    ngx_queue_t                target; /* in topic->links */
    ngx_queue_t                panel; /* in sub->links */
    ngx_http_amonitor_conn_t  *wc;
    ngx_http_amonitor_topic_t *topic;
} ngx_http_amonitor_link_t;


typedef struct ngx_http_amonitor_glob_s     ngx_http_amonitor_glob_t;
typedef struct ngx_http_amonitor_glob_use_s ngx_http_amonitor_glob_use_t;


/* a panel's subscription, wc->sub */
typedef struct {
    ngx_queue_t                   queue; /* in subs->all: everything */
    ngx_queue_t                   links; /* ngx_http_amonitor_link_t.panel */
    ngx_http_amonitor_conn_t     *wc;
    ngx_str_t                    *entries; /* ids and patterns, as given */
    ngx_uint_t                    nentries;
    ngx_str_t                    *ids; /* the same, ids only */
    ngx_uint_t                    nids;
    ngx_str_t                    *globs; /* the same, with a "*" */
    amon_glob_t                  *compiled; /* the globs, compiled */
    ngx_uint_t                    nglobs;
    ngx_uint_t                    npatterns; /* globs other than "*" alone */
    ngx_http_amonitor_glob_use_t *uses; /* of the worker's patterns */
    ngx_uint_t                    nuses;
    ngx_uint_t                    visit; /* last match that found it */
    ngx_int_t                     credit; /* matches it may make now */
    ngx_msec_t                    credit_time; /* when it was last refilled */
    unsigned                      all : 1; /* "*": everything */
    unsigned                      listed : 1; /* "queue" is in a list */
    unsigned                      snapshot : 1; /* amonitor_panel_snapshot */
} ngx_http_amonitor_sub_t;


/* a pattern, once per worker, and the panels that use it */
struct ngx_http_amonitor_glob_s {
    ngx_http_amonitor_glob_t *next; /* in its hash bucket */
    ngx_http_amonitor_glob_t *hnext; /* in its bucket by head */
    uint32_t                  hhash; /* of the text before the "*" */
    ngx_queue_t               queue; /* in subs->glob_list */
    ngx_queue_t               uses; /* ngx_http_amonitor_glob_use_t.queue */
    uint32_t                  hash;
    ngx_str_t                 pattern; /* follows the struct */
    amon_glob_t               compiled;
};


/* one panel's use of one pattern, in sub->uses */
struct ngx_http_amonitor_glob_use_s {
    ngx_queue_t               queue; /* in glob->uses */
    ngx_http_amonitor_sub_t  *sub;
    ngx_http_amonitor_glob_t *glob;
};


/* a target id and its upstream (served) or its record's place (zone) */
typedef struct {
    ngx_str_t id;
    void     *data;
} ngx_http_amonitor_index_entry_t;


/* ids in byte order: subscribe_index.c */
typedef struct {
    ngx_http_amonitor_index_entry_t *e;
    ngx_uint_t                       n;
    ngx_uint_t                       cap;
    ngx_uint_t                       gen; /* worker->upstreams_gen sorted */
    unsigned                         valid : 1;
} ngx_http_amonitor_index_t;


/* the worker's subscriptions, w->subs */
typedef struct {
    ngx_http_amonitor_topic_t **buckets;
    ngx_uint_t                  nbuckets; /* a power of two */
    ngx_uint_t                  ntopics;
    ngx_queue_t                 all; /* sub_t.queue: everything */
    ngx_uint_t                  stamp;
    ngx_http_amonitor_glob_t  **gbuckets; /* the patterns, hashed */
    ngx_http_amonitor_glob_t  **hbuckets; /* by the text before the "*" */
    ngx_uint_t                 *heads; /* patterns by length of that text */
    ngx_queue_t                 glob_list; /* glob_t.queue */
    ngx_uint_t                  nglobs;
    ngx_array_t                 matched; /* sub_t *: a new target's panels */
    ngx_uint_t                  visit;
    ngx_http_amonitor_index_t   served; /* upstream_t * by id */
    ngx_http_amonitor_index_t   records; /* the zone's places by id */
} ngx_http_amonitor_subs_t;


ngx_int_t ngx_http_amonitor_subscribe_init_worker(
    ngx_http_amonitor_worker_t *w);
void ngx_http_amonitor_subscribe_exit_worker(ngx_http_amonitor_worker_t *w);
ngx_int_t ngx_http_amonitor_subscribe_split(
    ngx_pool_t *pool, ngx_str_t *arg, ngx_array_t **list);
const char *ngx_http_amonitor_subscribe_check(ngx_http_amonitor_worker_t *w,
    ngx_str_t *list, ngx_uint_t n, ngx_uint_t *cost);
ngx_msec_t  ngx_http_amonitor_subscribe_wait(
     ngx_http_amonitor_conn_t *wc, ngx_uint_t cost);
void ngx_http_amonitor_subscribe_charge(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t cost);
ngx_int_t ngx_http_amonitor_subscribe_set(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_str_t *list, ngx_uint_t n);
ngx_int_t ngx_http_amonitor_subscribe_message(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, amon_envelope_t *env,
    ngx_http_amonitor_about_t *about);
void      ngx_http_amonitor_subscribe_gone(
         ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc);
ngx_int_t ngx_http_amonitor_subscribe_ids(
    ngx_http_amonitor_conn_t *wc, ngx_str_t **ids, ngx_uint_t *n);
ngx_uint_t ngx_http_amonitor_subscribe_wants(
    ngx_http_amonitor_conn_t *wc, ngx_str_t *id);
ngx_http_amonitor_topic_t *ngx_http_amonitor_subscribe_topic(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_upstream_t *u);
ngx_uint_t ngx_http_amonitor_glob_new(
    ngx_http_amonitor_subs_t *subs, ngx_str_t *list, ngx_uint_t n);
ngx_int_t ngx_http_amonitor_glob_add(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_sub_t *s, ngx_log_t *log);
void ngx_http_amonitor_glob_remove(
    ngx_http_amonitor_subs_t *subs, ngx_http_amonitor_sub_t *s);
ngx_int_t ngx_http_amonitor_glob_match(
    ngx_http_amonitor_subs_t *subs, ngx_str_t *id);
void ngx_http_amonitor_glob_free(ngx_http_amonitor_subs_t *subs);
void ngx_http_amonitor_subscribe_upstream_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_upstream_t *u);


ngx_http_amonitor_index_t *ngx_http_amonitor_index_served(
    ngx_http_amonitor_worker_t *w);
ngx_http_amonitor_index_t *ngx_http_amonitor_index_records(
    ngx_http_amonitor_worker_t *w);
void       ngx_http_amonitor_index_range(ngx_http_amonitor_index_t *ix,
          u_char *prefix, size_t len, ngx_uint_t *lo, ngx_uint_t *hi);
ngx_uint_t ngx_http_amonitor_index_cost(
    ngx_http_amonitor_worker_t *w, ngx_str_t *list, ngx_uint_t n);
ngx_uint_t ngx_http_amonitor_index_usable(ngx_http_amonitor_sub_t *s);
ngx_int_t  ngx_http_amonitor_index_places(ngx_http_amonitor_worker_t *w,
     ngx_http_amonitor_sub_t *s, ngx_uint_t **places, ngx_uint_t *n,
     ngx_uint_t *examined);
void       ngx_http_amonitor_index_free(ngx_http_amonitor_subs_t *subs);

#endif /* _NGX_HTTP_AMONITOR_SUBSCRIBE_H_INCLUDED_ */
