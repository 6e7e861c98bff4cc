/*
 * Copyright (C) AMonitor authors
 *
 * What action.c (the start of an action: claim, route, forward) and
 * action_end.c (its end: ack, timeout, failure, the audit line) share.
 */

#ifndef _NGX_HTTP_AMONITOR_ACTION_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_ACTION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_kept.h"


/* what action_fail does to the claim */
typedef enum {
    NGX_HTTP_AMONITOR_KEEP = 0, /* it may have run: record it as failed */
    NGX_HTTP_AMONITOR_RELEASE, /* never reached the SDK: forget it */
    NGX_HTTP_AMONITOR_FORGET /* the store failed: leave it alone */
} ngx_http_amonitor_claim_end_e;


typedef enum {
    NGX_HTTP_AMONITOR_ACTION_NEW = 0, /* claimed or being routed */
    NGX_HTTP_AMONITOR_ACTION_CLAIMING, /* the store answers later */
    NGX_HTTP_AMONITOR_ACTION_QUEUED, /* claimed at the end of this pass */
    NGX_HTTP_AMONITOR_ACTION_WAITING, /* for the target's connection */
    NGX_HTTP_AMONITOR_ACTION_SENT, /* queued to the SDK, ack due */
    NGX_HTTP_AMONITOR_ACTION_LATE, /* ACK_TIMEOUT said; a late ack counts */
    NGX_HTTP_AMONITOR_ACTION_ABANDONED /* answered; freed on the claim */
} ngx_http_amonitor_action_state_e;


typedef struct ngx_http_amonitor_action_s ngx_http_amonitor_action_t;

struct ngx_http_amonitor_action_s {
    ngx_str_node_t                   sn; /* msg_id, its hash as the key */
    ngx_http_amonitor_action_t      *next_sent; /* in its actions->slots */
    ngx_queue_t                      queue; /* upstream->waiting */
    ngx_queue_t                      all; /* actions->all */
    ngx_http_amonitor_conn_t        *panel; /* NULL once gone */
    ngx_http_amonitor_rights_t      *rights; /* the panel's token's */
    ngx_http_amonitor_upstream_t    *upstream;
    ngx_http_amonitor_worker_t      *worker;
    ngx_event_t                      timer; /* other deadlines */
    ngx_queue_t                      due_q; /* actions->due */
    ngx_msec_t                       due; /* in actions->due */
    uint64_t                         end_offset; /* in upstream bytes */
    ngx_str_t                        target_id;
    ngx_str_t                        target_url;
    ngx_str_t                        trace_id;
    ngx_str_t                        action; /* its name, for the audit */
    ngx_http_amonitor_msg_t         *msg; /* the frame, until it is sent */
    size_t                           held; /* in panel->actions_held */
    ngx_msec_t                       sent_at; /* for the round trip */
    void                            *claimed; /* store->claimed, a hint */
    ngx_uint_t                       upstreams_gen; /* at the first look */
    ngx_http_amonitor_action_state_e state;
    unsigned                         binary : 1;
    unsigned                         in_sent : 1;
    unsigned                         counted : 1; /* in panel->pending */
    unsigned                         limited : 1; /* over the panel's limit */
    unsigned                         heavy : 1; /* over its bytes (held) */
    unsigned                         in_due : 1;
    unsigned                         kept : 1; /* of the usual size */
    unsigned                         remote : 1; /* to the target's owner */
};


/*
 * The worker's actions: all of them, and the sent ones by msg_id
 * (action_sent.c).  Every
 * deadline of amonitor_ack_timeout (most of them) is in "due", oldest
 * first (each is now + the same timeout), under one timer: no timer tree
 * update per action.
 */
typedef struct {
    ngx_queue_t                  all;
    ngx_http_amonitor_action_t **slots; /* sent, by the hash of msg_id */
    ngx_uint_t                   mask; /* slots - 1 */
    ngx_uint_t                   nsent;
    ngx_log_t                   *log;
    ngx_queue_t                  due;
    ngx_event_t                  due_timer;
    ngx_queue_t                  queued; /* to claim in the zone, in order */
    ngx_event_t                  claims; /* posted: claim what is queued */
    ngx_queue_t                  retarget; /* their target was forgotten */
    ngx_event_t                  retargets; /* posted: look for it again */
    ngx_http_amonitor_kept_t     kept; /* records to use again */
} ngx_http_amonitor_actions_t;


void ngx_http_amonitor_action_claims_run(ngx_http_amonitor_worker_t *w);
ngx_http_amonitor_action_t *ngx_http_amonitor_sent_find(
    ngx_http_amonitor_actions_t *as, ngx_str_t *msg_id, uint32_t hash);
ngx_int_t ngx_http_amonitor_sent_add(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a);
ngx_http_amonitor_action_t *ngx_http_amonitor_sent_written(
    ngx_http_amonitor_actions_t *as, ngx_str_t *msg_id, uint32_t hash);
ngx_uint_t ngx_http_amonitor_sent_first(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a);
void ngx_http_amonitor_sent_del(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a);
void ngx_http_amonitor_sent_exit(ngx_http_amonitor_actions_t *as);
ngx_http_amonitor_action_t *ngx_http_amonitor_action_alloc(
    ngx_http_amonitor_actions_t *as, size_t size);
void ngx_http_amonitor_action_dealloc(
    ngx_http_amonitor_actions_t *as, ngx_http_amonitor_action_t *a);


void ngx_http_amonitor_action_about(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_about_t *about);
void ngx_http_amonitor_action_timer(
    ngx_http_amonitor_action_t *a, ngx_msec_t timeout);
void ngx_http_amonitor_action_route(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u);
void ngx_http_amonitor_action_untimer(ngx_http_amonitor_action_t *a);
void ngx_http_amonitor_action_timeout(ngx_event_t *ev);
void ngx_http_amonitor_action_due(ngx_event_t *ev);
void ngx_http_amonitor_action_fail(ngx_http_amonitor_action_t *a,
    const char *code, const char *message, ngx_http_amonitor_claim_end_e end);
void ngx_http_amonitor_action_keep(
    ngx_http_amonitor_action_t *a, const char *code, const char *message);
void ngx_http_amonitor_action_free(ngx_http_amonitor_action_t *a);
void ngx_http_amonitor_action_drop_msg(ngx_http_amonitor_action_t *a);
void ngx_http_amonitor_action_audit(
    ngx_http_amonitor_action_t *a, const char *outcome, const char *code);


#endif /* _NGX_HTTP_AMONITOR_ACTION_H_INCLUDED_ */
