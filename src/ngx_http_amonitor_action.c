/*
 * Copyright (C) AMonitor authors
 *
 * The life of an action, from the dedupe claim to its one answer: the
 * SDK's ack, a duplicate ack or an error.  Each action is in one state of
 * ngx_http_amonitor_action_state_e and has one timer for every state.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_action.h"


static ngx_http_amonitor_action_t *ngx_http_amonitor_action_new(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *panel,
    amon_envelope_t *env);
static void ngx_http_amonitor_action_claimed(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result);
static ngx_uint_t ngx_http_amonitor_action_forbidden(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_about_t *about);
static const char *ngx_http_amonitor_action_refused(
    ngx_http_amonitor_action_t *a, ngx_str_t *id);
static ngx_uint_t ngx_http_amonitor_action_rechecked(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_action_target(
    ngx_http_amonitor_action_t *a, ngx_uint_t dial);
static void ngx_http_amonitor_action_claims(ngx_event_t *ev);
static void ngx_http_amonitor_action_retargets(ngx_event_t *ev);
static void ngx_http_amonitor_action_claim(ngx_http_amonitor_action_t *a);
static void ngx_http_amonitor_action_from(ngx_http_amonitor_about_t *about,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env, ngx_uint_t opcode);
static ngx_uint_t ngx_http_amonitor_action_repeat(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env,
    ngx_http_amonitor_about_t *about);


ngx_int_t
ngx_http_amonitor_action_init_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_http_amonitor_actions_t *as;

    as = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_amonitor_actions_t));
    if (as == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&as->all);
    as->log = w->cycle->log;
    ngx_queue_init(&as->due);

    as->due_timer.handler = ngx_http_amonitor_action_due;
    as->due_timer.data = as;
    as->due_timer.log = w->cycle->log;
    as->due_timer.cancelable = 1;

    ngx_queue_init(&as->queued);
    as->claims.handler = ngx_http_amonitor_action_claims;
    as->claims.data = w;
    as->claims.log = w->cycle->log;

    ngx_queue_init(&as->retarget);
    as->retargets.handler = ngx_http_amonitor_action_retargets;
    as->retargets.data = w;
    as->retargets.log = w->cycle->log;

    w->actions = as;

    return NGX_OK;
}


/* the worker exits: forget what is still pending (the claims stay) */
void
ngx_http_amonitor_action_exit_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = w->actions;

    if (as->claims.posted) {
        ngx_delete_posted_event(&as->claims);
    }

    if (as->retargets.posted) {
        ngx_delete_posted_event(&as->retargets);
    }

    while (!ngx_queue_empty(&as->all)) {
        q = ngx_queue_head(&as->all);
        a = ngx_queue_data(q, ngx_http_amonitor_action_t, all);
        a->panel = NULL;
        ngx_http_amonitor_action_free(a);
    }

    if (as->due_timer.timer_set) {
        ngx_del_timer(&as->due_timer);
    }

    ngx_http_amonitor_sent_exit(as);
}


/*
 * The action's frame: its bytes unchanged, in a client's masked frame,
 * counted against the panel's amonitor_connection_buffer_limit until it
 * is queued for the SDK.  Over the panel's limits (actions waiting, or
 * their bytes) no frame is made: the claim still runs, so that a
 * repeated msg_id gets its duplicate answer; a new one is released and
 * RATE_LIMITED.  NGX_ERROR: out of memory.
 */
static ngx_int_t
ngx_http_amonitor_action_frame(ngx_http_amonitor_action_t *a,
    ngx_http_amonitor_conn_t *panel, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    size_t size;

    a->limited = (panel->pending >= a->worker->amcf->queue);

    if (a->limited) {
        return NGX_OK;
    }

    size = len + AMON_MAX_FRAME_HEADER; /* its frame, at most */

    if (ngx_http_amonitor_conn_hold(panel, size) != NGX_OK) {
        a->limited = 1;
        a->heavy = 1;
        return NGX_OK;
    }

    a->msg =
        ngx_http_amonitor_msg_frame(&a->worker->frames, opcode, data, len, 1);
    if (a->msg == NULL) {
        panel->actions_held -= size;
        return NGX_ERROR;
    }

    a->msg->refs++;
    a->held = size;

    return NGX_OK;
}


/*
 * A valid action from a panel (it has a target and payload.action).  The
 * order of the checks is the documented precedence of errors: the target
 * first (no claim for an action that cannot go anywhere), then the panel's
 * limit and the dedupe claim, then the route.  Its bytes go to the SDK
 * unchanged.
 */
void
ngx_http_amonitor_action_start(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env, ngx_uint_t opcode,
    u_char *data, size_t len)
{
    const char                  *code, *message;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;
    ngx_http_amonitor_about_t    about;

    ngx_http_amonitor_action_from(&about, panel, env, opcode);

    if (panel->pending >= 2 * w->amcf->queue) {
        if (ngx_http_amonitor_action_repeat(w, panel, env, &about)) {
            return;
        }

        /* bounded memory: a panel cannot pile up unanswered actions */
        ngx_http_amonitor_reply_error(w, panel, &about, "RATE_LIMITED",
            "too many actions of this panel are waiting for acks", 1);
        return;
    }

    a = ngx_http_amonitor_action_new(w, panel, env);
    if (a == NULL) {
        ngx_http_amonitor_reply_error(
            w, panel, &about, "INTERNAL", "out of memory", 1);
        return;
    }

    a->worker = w;
    a->binary = about.binary;

    /*
     * The claim's slot loads while the pass goes on; what it evicts is
     * loaded when the claims run (claims_run), not twice.
     */
    if (w->store->prefetch) {
        w->store->prefetch(w->store, (uint32_t) a->sn.node.key, 0, NULL);
    }

    /* a known target: replies name it as the agent does from now on */
    if (ngx_http_amonitor_target_resolve(w, &a->target_id, &a->target_url, 0, 0,
            &a->upstream, &code, &message)
        != NGX_OK) {
        (void) ngx_atomic_fetch_add(&w->counters->errors, 1);
        ngx_http_amonitor_reply_error(w, panel, &about, code, message, 1);
        ngx_http_amonitor_action_audit(a, "error", code);
        ngx_http_amonitor_action_dealloc(w->actions, a);
        return;
    }

    a->upstreams_gen = w->upstreams_gen;

    if (ngx_http_amonitor_action_forbidden(a, &about)) {
        ngx_http_amonitor_action_dealloc(w->actions, a);
        return;
    }

    if (ngx_http_amonitor_action_frame(a, panel, opcode, data, len) != NGX_OK) {
        ngx_http_amonitor_action_dealloc(w->actions, a);
        ngx_http_amonitor_reply_error(
            w, panel, &about, "INTERNAL", "out of memory", 1);
        return;
    }

    as = w->actions;

    ngx_queue_insert_tail(&as->all, &a->all);
    panel->pending++;
    a->counted = 1;

    /* from now on a repeat on this connection finds it (sent_first) */
    (void) ngx_http_amonitor_sent_add(as, a);

    if (w->store->prefetch == NULL) {
        ngx_http_amonitor_action_claim(a);
        return;
    }

    /*
     * The zone: the claims of this pass of the event loop run together at
     * its end, in the order the actions came, so that the cache misses
     * their prefetches started overlap instead of being waited for one
     * by one.
     */
    a->state = NGX_HTTP_AMONITOR_ACTION_QUEUED;
    ngx_queue_insert_tail(&as->queued, &a->queue);

    ngx_http_amonitor_post_first(&as->claims);
}


static void
ngx_http_amonitor_action_claims(ngx_event_t *ev)
{
    ngx_http_amonitor_action_claims_run(ev->data);
}


/* the claims queued in this pass, now (a query must see them) */
void
ngx_http_amonitor_action_claims_run(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = w->actions;

    if (as->claims.posted) {
        ngx_delete_posted_event(&as->claims);
    }

    while (!ngx_queue_empty(&as->queued)) {
        q = ngx_queue_head(&as->queued);
        ngx_queue_remove(q);

        a = ngx_queue_data(q, ngx_http_amonitor_action_t, queue);
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;

        /* what this claim evicts, and the next one, while it runs */
        w->store->prefetch(w->store, (uint32_t) a->sn.node.key, 1, NULL);

        ngx_http_amonitor_action_claim(a);
    }
}


/* the dedupe claim: answered inline (shm) or later (Redis) */
static void
ngx_http_amonitor_action_claim(ngx_http_amonitor_action_t *a)
{
    u_char                      buf[NGX_HTTP_AMONITOR_STORED_MAX];
    ngx_int_t                   rc;
    ngx_str_t                   result;
    ngx_http_amonitor_worker_t *w;
    ngx_http_amonitor_claim_e   state;

    w = a->worker;

    /* an inline answer (shm) copies a stored result here */
    result.data = buf;
    result.len = 0;

    rc = w->store->claim(w->store, &a->sn.str, (uint32_t) a->sn.node.key,
        a->target_id.len ? &a->target_id : &a->target_url, &state, &result,
        ngx_http_amonitor_action_claimed, a);

    if (rc == NGX_OK) {
        a->claimed = w->store->claimed;
        ngx_http_amonitor_action_claimed(a, state, &result);

    } else if (rc == NGX_AGAIN) {
        /* the store answers later; it must do so in time */
        a->state = NGX_HTTP_AMONITOR_ACTION_CLAIMING;
        ngx_http_amonitor_action_timer(a, w->amcf->ack_timeout);

    } else if (rc == NGX_BUSY) {
        ngx_http_amonitor_action_fail(a, "RATE_LIMITED",
            "too many actions are waiting for the dedupe store "
            "(amonitor_redis claims=)",
            NGX_HTTP_AMONITOR_FORGET);

    } else if (rc == NGX_DECLINED) {
        ngx_http_amonitor_action_fail(a, "RATE_LIMITED",
            "the dedupe zone is full of actions waiting for their acks "
            "(amonitor_zone size)",
            NGX_HTTP_AMONITOR_FORGET);

    } else {
        ngx_http_amonitor_action_fail(a, "INTERNAL",
            "the dedupe store is not available", NGX_HTTP_AMONITOR_FORGET);
    }
}


/* what every answer to this action names: ids, target, encoding */
static void
ngx_http_amonitor_action_from(ngx_http_amonitor_about_t *about,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env, ngx_uint_t opcode)
{
    about->msg_id.data = (u_char *) env->msg_id.data;
    about->msg_id.len = env->msg_id.len;
    about->trace_id.data = (u_char *) env->trace_id.data;
    about->trace_id.len = env->trace_id.len;

    if (env->target_id.len) {
        about->target_id.data = (u_char *) env->target_id.data;
        about->target_id.len = env->target_id.len;

    } else {
        about->target_id.data = (u_char *) env->target_url.data;
        about->target_id.len = env->target_url.len;
    }

    about->binary = panel->encoding ? (panel->encoding == AMON_WS_OP_BINARY)
                                    : (opcode == AMON_WS_OP_BINARY);
    about->action = 1;
}


/*
 * Over the panel's hard limit, a repeat of an action this connection sent
 * that is still on its way is not refused: the first attempt's own final
 * answer is still to come, so the repeat gets the "pending" duplicate with
 * "final":false it gets under the limit (the first attempt is found in the
 * worker's table of actions on their way, whatever their state: nothing
 * is claimed or kept for the repeat).
 */
static ngx_uint_t
ngx_http_amonitor_action_repeat(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env,
    ngx_http_amonitor_about_t *about)
{
    u_char                       ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    uint32_t                     hash;
    ngx_str_t                    id, e;
    ngx_http_amonitor_action_t  *first;
    ngx_http_amonitor_actions_t *as;

    as = w->actions;
    id.data = (u_char *) env->msg_id.data;
    id.len = env->msg_id.len;
    hash = ngx_http_amonitor_hash(id.data, id.len);

    first = ngx_http_amonitor_sent_find(as, &id, hash);

    if (first == NULL || first->panel != panel) {
        return 0;
    }

    (void) ngx_atomic_fetch_add(&w->counters->duplicates, 1);

    ngx_log_error(NGX_LOG_INFO, panel->connection->log, 0,
        "amonitor: duplicate action \"%V\" ignored",
        ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)));

    ngx_http_amonitor_reply_duplicate(
        w, panel, about, "pending", NULL, AMON_FINAL_NO);
    ngx_http_amonitor_action_audit(first, "duplicate", "pending");

    return 1;
}


/*
 * The panel's token may not act, or not on this target (the agent's name
 * for it, else the name an on-demand dial would give it: its target_id,
 * or its URL normalised, never the URL as the panel wrote it): FORBIDDEN,
 * nothing claimed, nothing forwarded.
 */
static ngx_uint_t
ngx_http_amonitor_action_forbidden(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_about_t *about)
{
    u_char      norm[AMON_MAX_URL_LEN + 16];
    ngx_str_t  *id, name, none;
    const char *reason;

    if (a->rights == NULL) {
        /* no token at this location: every panel may act */
        return 0;
    }

    if (a->upstream) {
        id = &a->upstream->id;

    } else {
        /* resolve() parsed the URL already: this cannot fail */
        name.data = norm;

        if (ngx_http_amonitor_target_name(&a->target_id, &a->target_url, &name)
            != NGX_OK) {
            name.len = 0;
        }

        id = &name;
    }

    reason = ngx_http_amonitor_action_refused(a, id);

    if (reason == NULL && a->upstream == NULL && a->target_id.len
        && a->target_url.len) {
        /*
         * A new target named by the action and dialed at its URL: the
         * URL must be in the rights too, or a token could give any name
         * of its own to an SDK outside its rights, reached under another
         * spelling of its address (a host name, "/?", "//", a path)
         */
        ngx_str_null(&none);
        name.data = norm;

        if (ngx_http_amonitor_target_name(&none, &a->target_url, &name)
            == NGX_OK) {
            reason = ngx_http_amonitor_action_refused(a, &name);
        }
    }

    if (reason == NULL) {
        return 0;
    }

    ngx_http_amonitor_reply_error(
        a->worker, a->panel, about, "FORBIDDEN", reason, 1);
    ngx_http_amonitor_action_audit(a, "error", "FORBIDDEN");

    return 1;
}


/*
 * After the claim the action's target is looked for again, and it may be
 * another one than the target checked before (a Redis claim is answered
 * later: meanwhile its URL may have become a registered SDK's, or the
 * target checked may be gone).  The very target checked then is not
 * checked twice.  A refusal releases the claim: it never ran.
 */
static ngx_uint_t
ngx_http_amonitor_action_rechecked(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_upstream_t *u)
{
    const char                 *reason;
    ngx_http_amonitor_about_t   about;
    ngx_http_amonitor_worker_t *w;

    if (u == a->upstream || a->rights == NULL) {
        return 0;
    }

    a->upstream = u;

    reason = ngx_http_amonitor_action_refused(a, &u->id);
    if (reason == NULL) {
        return 0;
    }

    w = a->worker;

    w->store->release(w->store, &a->sn.str);

    if (a->panel) {
        ngx_http_amonitor_action_about(a, &about);
        ngx_http_amonitor_reply_error(
            w, a->panel, &about, "FORBIDDEN", reason, 1);
    }

    ngx_http_amonitor_action_audit(a, "error", "FORBIDDEN");
    ngx_http_amonitor_action_free(a);

    return 1;
}


/* the reason the token may not act on the target "id", counted, logged */
static const char *
ngx_http_amonitor_action_refused(ngx_http_amonitor_action_t *a, ngx_str_t *id)
{
    u_char     ebuf[NGX_HTTP_AMONITOR_LOG_STR], tbuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t  e, t;
    ngx_log_t *log;
    const char *reason;

    reason = ngx_http_amonitor_rights_check(a->rights, id);
    if (reason == NULL) {
        return NULL;
    }

    (void) ngx_atomic_fetch_add(&a->worker->counters->forbidden, 1);
    (void) ngx_atomic_fetch_add(&a->worker->counters->errors, 1);

    log = a->panel ? a->panel->connection->log : a->worker->cycle->log;

    ngx_log_error(NGX_LOG_INFO, log, 0,
        "amonitor: action \"%V\" of panel #%ui to \"%V\" refused: %s",
        ngx_http_amonitor_log_str(&a->sn.str, &e, ebuf, sizeof(ebuf)),
        a->panel ? a->panel->id : 0,
        ngx_http_amonitor_log_str(id, &t, tbuf, sizeof(tbuf)), reason);

    return reason;
}


/* one record: the action and copies of its msg_id, target id and URL */
static ngx_http_amonitor_action_t *
ngx_http_amonitor_action_new(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, amon_envelope_t *env)
{
    u_char                     *d;
    ngx_http_amonitor_action_t *a;

    a = ngx_http_amonitor_action_alloc(w->actions,
        env->msg_id.len + env->target_id.len + env->target_url.len
            + env->trace_id.len + env->action.len);
    if (a == NULL) {
        return NULL;
    }

    d = (u_char *) (a + 1);

    a->sn.str.data = d;
    a->sn.str.len = env->msg_id.len;
    if (env->msg_id.len) {
        d = ngx_cpymem(d, env->msg_id.data, env->msg_id.len);
    }

    a->target_id.data = d;
    a->target_id.len = env->target_id.len;
    if (env->target_id.len) {
        d = ngx_cpymem(d, env->target_id.data, env->target_id.len);
    }

    a->target_url.data = d;
    a->target_url.len = env->target_url.len;
    if (env->target_url.len) {
        d = ngx_cpymem(d, env->target_url.data, env->target_url.len);
    }

    a->trace_id.data = d;
    a->trace_id.len = env->trace_id.len;
    if (env->trace_id.len) {
        d = ngx_cpymem(d, env->trace_id.data, env->trace_id.len);
    }

    a->action.data = d;
    a->action.len = env->action.len;
    if (env->action.len) {
        ngx_memcpy(d, env->action.data, env->action.len);
    }

    a->sn.node.key = ngx_http_amonitor_hash(a->sn.str.data, a->sn.str.len);
    a->panel = panel;
    a->rights = panel->rights;

    return a;
}


static void
ngx_http_amonitor_action_claimed(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result)
{
    ngx_http_amonitor_action_t *a = data;

    u_char                      ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t                   e;
    const char                 *name;
    ngx_http_amonitor_about_t   about;
    ngx_http_amonitor_worker_t *w;

    w = a->worker;

    if (a->state == NGX_HTTP_AMONITOR_ACTION_ABANDONED) {
        /* answered already (store timeout, worker exit): never forwarded */
        if (state == NGX_HTTP_AMONITOR_CLAIM_NEW) {
            w->store->release(w->store, &a->sn.str);
        }

        ngx_http_amonitor_action_dealloc(w->actions, a);
        return;
    }

    if (a->state == NGX_HTTP_AMONITOR_ACTION_CLAIMING) {
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;

        ngx_http_amonitor_action_untimer(a);
    }

    if (state == NGX_HTTP_AMONITOR_CLAIM_ERROR) {
        ngx_http_amonitor_action_fail(
            a, "INTERNAL", "the dedupe store failed", NGX_HTTP_AMONITOR_FORGET);
        return;
    }

    if (state == NGX_HTTP_AMONITOR_CLAIM_NEW) {
        if (a->limited) {
            ngx_http_amonitor_action_fail(a, "RATE_LIMITED",
                a->heavy ? "the actions of this panel that wait to be "
                           "written hold amonitor_connection_buffer_limit"
                         : "too many actions of this panel are waiting "
                           "for acks",
                NGX_HTTP_AMONITOR_RELEASE);
            return;
        }

        ngx_http_amonitor_action_target(a, 1);
        return;
    }

    /* a duplicate: never forwarded, answered by the agent itself */

    (void) ngx_atomic_fetch_add(&w->counters->duplicates, 1);

    if (a->panel) {
        ngx_log_error(NGX_LOG_INFO, a->panel->connection->log, 0,
            "amonitor: duplicate action \"%V\" ignored",
            ngx_http_amonitor_log_str(&a->sn.str, &e, ebuf, sizeof(ebuf)));

        name = (state == NGX_HTTP_AMONITOR_CLAIM_DONE)  ? "done"
            : (state == NGX_HTTP_AMONITOR_CLAIM_FAILED) ? "failed"
                                                        : "pending";

        ngx_http_amonitor_action_about(a, &about);
        ngx_http_amonitor_reply_duplicate(w, a->panel, &about, name,
            (state == NGX_HTTP_AMONITOR_CLAIM_PENDING) ? NULL : result,
            (state == NGX_HTTP_AMONITOR_CLAIM_PENDING
                && ngx_http_amonitor_sent_first(w->actions, a))
                ? AMON_FINAL_NO
                : AMON_FINAL_YES);
        ngx_http_amonitor_action_audit(a, "duplicate", name);
    }

    ngx_http_amonitor_action_free(a);
}


/*
 * Claimed: the target is looked for again, then the action goes there.
 * "dial": the URL may be dialed (else, for an action whose target was
 * forgotten, only what holds the id or URL now will do).
 */
static void
ngx_http_amonitor_action_target(ngx_http_amonitor_action_t *a, ngx_uint_t dial)
{
    ngx_int_t                     rc;
    const char                   *code, *message;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *u;

    w = a->worker;
    u = NULL;

    if (dial && a->upstream && a->upstreams_gen == w->upstreams_gen) {
        /* no target came or went since the first look: the same one */
        u = a->upstream;
        rc = NGX_OK;

    } else {
        /* a known target_id wins, else the URL, dialed now if need be */
        rc = ngx_http_amonitor_target_resolve(w, &a->target_id, &a->target_url,
            dial, (dial && a->panel) ? a->panel->id : 0, &u, &code, &message);
    }

    if (!dial && (rc != NGX_OK || u == NULL)) {
        rc = NGX_ERROR;
        code = "TARGET_UNAVAILABLE";
        message = "the target was forgotten before it connected";
    }

    if (rc != NGX_OK) {
        ngx_http_amonitor_action_fail(
            a, code, message, NGX_HTTP_AMONITOR_RELEASE);
        return;
    }

    if (ngx_http_amonitor_action_rechecked(a, u)) {
        return;
    }

    ngx_http_amonitor_action_route(a, u);
}


/*
 * A learned target is about to be forgotten (a register displaces the
 * dial, it expires): the actions waiting for its connection never reached
 * it.  They look for their target again once the handler that forgets it
 * is done, when the register's own target is known; the ack timeout
 * starts again from there.  Until then they stay WAITING (a timeout or
 * the worker's exit takes them out of the queue).
 */
void
ngx_http_amonitor_action_upstream_forgotten(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_actions_t *as;

    if (ngx_queue_empty(&u->waiting)) {
        return;
    }

    as = u->worker->actions;

    ngx_queue_add(&as->retarget, &u->waiting);
    ngx_queue_init(&u->waiting);

    ngx_post_event(&as->retargets, &ngx_posted_events);
}


/*
 * The actions of a forgotten target look for it again, without dialing:
 * what holds the id now (a register's target) gets them; when nothing
 * does (the dial expired, or was given up), they are answered rather
 * than dialing the forgotten URL again, which would be forgotten in turn.
 */
static void
ngx_http_amonitor_action_retargets(ngx_event_t *ev)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    w = ev->data;
    as = w->actions;

    while (!ngx_queue_empty(&as->retarget)) {
        q = ngx_queue_head(&as->retarget);
        ngx_queue_remove(q);

        a = ngx_queue_data(q, ngx_http_amonitor_action_t, queue);
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;
        a->upstream = NULL;

        ngx_http_amonitor_action_target(a, 0);
    }
}
