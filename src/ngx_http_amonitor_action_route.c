/*
 * Copyright (C) AMonitor authors
 *
 * Where a claimed action goes: the target's connection, a connection in
 * progress or a lease still being asked (it waits, at most the ack
 * timeout), or, with amonitor_cluster, the worker holding the target.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_action.h"
#include "ngx_http_amonitor_cluster.h"


static ngx_uint_t ngx_http_amonitor_action_clustered(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_action_local(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_action_forward(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_action_sent(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u);


/* the target is found and may be acted on */
void
ngx_http_amonitor_action_route(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u)
{
    a->upstream = u;

    if (ngx_http_amonitor_action_clustered(a, u)) {
        return;
    }

    ngx_http_amonitor_action_local(a, u);
}


/*
 * amonitor_cluster: the worker holding the target's lease runs it; while
 * nobody is known to hold it (a target this worker has just learned, or
 * dials for this action) the action waits for the lease's answer as it
 * would for a connection.  0: this worker holds it.
 */
static ngx_uint_t
ngx_http_amonitor_action_clustered(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u)
{
    switch (ngx_http_amonitor_cluster_forward(u, &a->sn.str, a->msg)) {

    case NGX_OK:
        a->remote = 1;
        ngx_http_amonitor_action_sent(a, u);
        return 1;

    case NGX_AGAIN:
        a->state = NGX_HTTP_AMONITOR_ACTION_WAITING;
        ngx_queue_insert_tail(&u->waiting, &a->queue);
        (void) ngx_http_amonitor_sent_add(a->worker->actions, a);
        ngx_http_amonitor_action_timer(a, a->worker->amcf->ack_timeout);
        return 1;

    case NGX_ERROR:
        ngx_http_amonitor_action_fail(a, "TARGET_UNAVAILABLE",
            "the cluster bus (redis) is not available",
            NGX_HTTP_AMONITOR_RELEASE);
        return 1;

    default: return 0;
    }
}


/* this worker holds the target (or there is no cluster) */
static void
ngx_http_amonitor_action_local(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_worker_t *w;

    w = a->worker;

    ngx_http_amonitor_target_kick(u);

    if (u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
        ngx_http_amonitor_action_forward(a, u);
        return;
    }

    if (u->state == NGX_HTTP_AMONITOR_UP_CONNECTING
        || u->state == NGX_HTTP_AMONITOR_UP_HANDSHAKE) {
        /* a connection is in progress: wait for it, not longer */
        a->state = NGX_HTTP_AMONITOR_ACTION_WAITING;
        ngx_queue_insert_tail(&u->waiting, &a->queue);
        (void) ngx_http_amonitor_sent_add(w->actions, a);
        ngx_http_amonitor_action_timer(a, w->amcf->ack_timeout);
        return;
    }

    ngx_http_amonitor_action_fail(a, "TARGET_UNAVAILABLE",
        u->tls_failed    ? NGX_HTTP_AMONITOR_TLS_FAILED
            : u->stopped ? "the agent gave up dialing the target: it never "
                           "connected (amonitor_dial_attempts)"
                         : "the target is not connected",
        NGX_HTTP_AMONITOR_RELEASE);
}


static void
ngx_http_amonitor_action_forward(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_worker_t *w;
    ngx_http_amonitor_tstate_t *ts;

    w = a->worker;

    if (ngx_http_amonitor_conn_send(&u->wc, a->msg, 1) != NGX_OK) {
        ngx_http_amonitor_action_fail(a, "TARGET_UNAVAILABLE",
            "the target's send queue is full", NGX_HTTP_AMONITOR_RELEASE);
        return;
    }

    a->end_offset = u->wc.queued_bytes;

    (void) ngx_atomic_fetch_add(&w->counters->actions, 1);

    if (u->tstate) {
        ts = u->tstate;
        (void) ngx_atomic_fetch_add(&ts->actions, 1);
    }

    ngx_http_amonitor_action_sent(a, u);
}


/* on its way to the SDK (or to the worker holding it): the ack is due */
static void
ngx_http_amonitor_action_sent(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_actions_t *as;

    w = a->worker;
    as = w->actions;

    a->state = NGX_HTTP_AMONITOR_ACTION_SENT;

    ngx_http_amonitor_action_drop_msg(a);

    (void) ngx_http_amonitor_sent_add(as, a);

    a->sent_at = ngx_current_msec;

    ngx_http_amonitor_action_timer(a, w->amcf->ack_timeout);
}


/*
 * amonitor_cluster: the worker holding the target answered an action of
 * this worker with an error (or nobody holds it).  Whether it may have
 * run decides what becomes of the claim.
 */
void
ngx_http_amonitor_action_remote_error(ngx_http_amonitor_upstream_t *u,
    ngx_str_t *msg_id, const char *code, const char *message)
{
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = u->worker->actions;

    a = ngx_http_amonitor_sent_find(
        as, msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));

    if (a == NULL || a->upstream != u
        || (a->state != NGX_HTTP_AMONITOR_ACTION_SENT
            && a->state != NGX_HTTP_AMONITOR_ACTION_LATE)) {
        return;
    }

    ngx_http_amonitor_action_fail(a, code, message,
        ngx_strcmp(code, "TARGET_UNAVAILABLE") == 0 ? NGX_HTTP_AMONITOR_RELEASE
                                                    : NGX_HTTP_AMONITOR_KEEP);
}


/*
 * amonitor_cluster: this worker's action to "target" that was handed to
 * Redis for the target's owner and still waits for its ack, or NULL
 */
static ngx_http_amonitor_action_t *
ngx_http_amonitor_action_forwarded(
    ngx_http_amonitor_worker_t *w, ngx_str_t *target, ngx_str_t *msg_id)
{
    ngx_http_amonitor_action_t   *a;
    ngx_http_amonitor_upstream_t *u;

    u = ngx_http_amonitor_target_find(w, target);
    if (u == NULL) {
        return NULL;
    }

    a = ngx_http_amonitor_sent_find(
        w->actions, msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));

    if (a == NULL || a->upstream != u || !a->remote
        || a->state != NGX_HTTP_AMONITOR_ACTION_SENT) {
        return NULL;
    }

    return a;
}


/*
 * amonitor_cluster: Redis could not hand the action to an owner yet:
 * Redis lost its data a moment ago (got -2); or the lease is there but
 * nobody is on its owner's channel (0: the owner died, exits, or lost
 * its subscriber connection: it comes back, or the lease goes to a next
 * owner who says up or down); or the lease is free (-1) while the
 * owner's last word was that the target is up (or this worker has taken
 * the lease and dials the target).  The action may wait for an owner
 * while it waits for its ack, for at most half its ack timeout (then the
 * panel learns why, released, with time left for a retry).  Not when the
 * lease is free and the target down: the panel learns that at once, as
 * without a cluster.
 */
ngx_uint_t
ngx_http_amonitor_action_holdable(ngx_http_amonitor_worker_t *w,
    ngx_str_t *target, ngx_str_t *msg_id, ngx_int_t got)
{
    ngx_http_amonitor_action_t   *a;
    ngx_http_amonitor_upstream_t *u;

    a = ngx_http_amonitor_action_forwarded(w, target, msg_id);
    if (a == NULL) {
        return 0;
    }

    u = a->upstream;

    /* up at its owner, or this worker took the lease and dials it */
    if (got == -1 && !u->remote_up && u->state != NGX_HTTP_AMONITOR_UP_OPEN
        && u->state != NGX_HTTP_AMONITOR_UP_CONNECTING
        && u->state != NGX_HTTP_AMONITOR_UP_HANDSHAKE) {
        return 0;
    }

    return ngx_current_msec - a->sent_at < w->amcf->ack_timeout / 2;
}


/*
 * amonitor_cluster: while the action waited for an owner, this worker
 * took the target's lease: the frame it would have handed over goes to
 * the SDK from here (its connection, or one being made), as a local
 * action's.  NGX_DECLINED: the action is not waiting any more.
 */
ngx_int_t
ngx_http_amonitor_action_rehome(ngx_http_amonitor_worker_t *w,
    ngx_str_t *target, ngx_str_t *msg_id, u_char *frame, size_t len)
{
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_action_t *a;

    a = ngx_http_amonitor_action_forwarded(w, target, msg_id);
    if (a == NULL) {
        return NGX_DECLINED;
    }

    msg = ngx_http_amonitor_msg_alloc(&w->frames, len);
    if (msg == NULL) {
        return NGX_DECLINED;
    }

    ngx_memcpy(msg->data, frame, len);
    msg->len = len;
    msg->refs++;

    a->msg = msg;
    a->remote = 0;
    a->state = NGX_HTTP_AMONITOR_ACTION_NEW;

    ngx_http_amonitor_action_local(a, a->upstream);

    return NGX_OK;
}


/* the target's connection is open: what waited for it goes now */
void
ngx_http_amonitor_action_upstream_open(ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_t                *q;
    ngx_http_amonitor_action_t *a;

    while (!ngx_queue_empty(&u->waiting)
        && u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
        q = ngx_queue_head(&u->waiting);
        ngx_queue_remove(q);

        a = ngx_queue_data(q, ngx_http_amonitor_action_t, queue);
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;

        ngx_http_amonitor_action_forward(a, u);
    }
}


/*
 * amonitor_cluster: the answer to this worker's first try for the target's
 * lease is that another worker holds it (or none is known): the actions
 * that waited for it go there now, as any later one would.
 */
void
ngx_http_amonitor_action_lease_settled(ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_t                 list, *q;
    ngx_http_amonitor_action_t *a;

    if (ngx_queue_empty(&u->waiting)) {
        return;
    }

    ngx_queue_init(&list);
    ngx_queue_add(&list, &u->waiting);
    ngx_queue_init(&u->waiting);

    while (!ngx_queue_empty(&list)) {
        q = ngx_queue_head(&list);
        ngx_queue_remove(q);

        a = ngx_queue_data(q, ngx_http_amonitor_action_t, queue);
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;

        if (!ngx_http_amonitor_action_clustered(a, u)) {
            ngx_http_amonitor_action_local(a, u);
        }
    }
}


/*
 * A learned target is forgotten (upstream.c frees it next): actions that
 * still name it (a claim on its way) look for their target again.
 */
void
ngx_http_amonitor_action_upstream_gone(ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = u->worker->actions;

    for (q = ngx_queue_head(&as->all); q != ngx_queue_sentinel(&as->all);
         q = ngx_queue_next(q)) {
        a = ngx_queue_data(q, ngx_http_amonitor_action_t, all);

        if (a->upstream == u) {
            a->upstream = NULL;
        }
    }
}
