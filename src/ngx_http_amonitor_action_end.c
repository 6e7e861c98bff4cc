/*
 * Copyright (C) AMonitor authors
 *
 * The end of an action: its timer, the SDK's ack, the ack timeout and the
 * late window, a failure with what it does to the dedupe claim, the audit
 * line, and freeing it; a closed panel's actions going on without it.
 * Calls nothing in action.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_action.h"


static void ngx_http_amonitor_action_log_noack(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_about_t *about);
static void ngx_http_amonitor_action_ack_other(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_str_t *id, uint32_t hash, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_http_amonitor_action_finish(ngx_http_amonitor_action_t *a,
    ngx_http_amonitor_claim_e state, ngx_str_t *result, u_char *buf);
static void ngx_http_amonitor_action_record(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *target,
    ngx_http_amonitor_claim_e state, ngx_str_t *result, u_char *buf);
static void ngx_http_amonitor_action_ack_result(
    amon_envelope_t *env, ngx_str_t *result, u_char *buf);
static void ngx_http_amonitor_action_unhold(ngx_http_amonitor_action_t *a);


/* what a reply about the action answers */
void
ngx_http_amonitor_action_about(
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_about_t *about)
{
    about->msg_id = a->sn.str;
    about->trace_id = a->trace_id;

    if (a->upstream) {
        about->target_id = a->upstream->id;

    } else {
        about->target_id = a->target_id.len ? a->target_id : a->target_url;
    }

    about->binary = a->binary;
    about->action = 1;
}


/* every state has one deadline, handled by action_timeout */
void
ngx_http_amonitor_action_timer(
    ngx_http_amonitor_action_t *a, ngx_msec_t timeout)
{
    ngx_http_amonitor_actions_t *as;

    ngx_http_amonitor_action_untimer(a);

    if (timeout == a->worker->amcf->ack_timeout) {
        /* now + the same timeout: the tail is the latest deadline */
        as = a->worker->actions;

        a->due = ngx_current_msec + timeout;
        ngx_queue_insert_tail(&as->due, &a->due_q);
        a->in_due = 1;

        if (!as->due_timer.timer_set) {
            ngx_add_timer(&as->due_timer, timeout);
        }

        return;
    }

    a->timer.handler = ngx_http_amonitor_action_timeout;
    a->timer.data = a;
    a->timer.log = a->worker->cycle->log;
    a->timer.cancelable = 1;

    ngx_add_timer(&a->timer, timeout);
}


void
ngx_http_amonitor_action_untimer(ngx_http_amonitor_action_t *a)
{
    if (a->in_due) {
        /* the due timer stays: it looks at the head when it fires */
        ngx_queue_remove(&a->due_q);
        a->in_due = 0;
    }

    if (a->timer.timer_set) {
        ngx_del_timer(&a->timer);
    }
}


/* the due timer: every deadline passed, then wait for the next one */
void
ngx_http_amonitor_action_due(ngx_event_t *ev)
{
    ngx_http_amonitor_actions_t *as = ev->data;

    ngx_queue_t                *q;
    ngx_msec_int_t              left;
    ngx_http_amonitor_action_t *a;

    while (!ngx_queue_empty(&as->due)) {
        q = ngx_queue_head(&as->due);
        a = ngx_queue_data(q, ngx_http_amonitor_action_t, due_q);

        left = (ngx_msec_int_t) (a->due - ngx_current_msec);

        if (left > 0) {
            ngx_add_timer(&as->due_timer, (ngx_msec_t) left);
            return;
        }

        ngx_queue_remove(q);
        a->in_due = 0;

        /* it may end the action, or give it a new deadline at the tail */
        a->timer.data = a;
        ngx_http_amonitor_action_timeout(&a->timer);
    }
}


void
ngx_http_amonitor_action_timeout(ngx_event_t *ev)
{
    ngx_http_amonitor_action_t *a = ev->data;

    u_char                      ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t                   e;
    ngx_http_amonitor_about_t   about;
    ngx_http_amonitor_worker_t *w;

    w = a->worker;

    switch (a->state) {

    case NGX_HTTP_AMONITOR_ACTION_CLAIMING:
        ngx_log_error(NGX_LOG_ERR, w->cycle->log, 0,
            "amonitor: the dedupe store did not answer for action \"%V\" "
            "within %M ms",
            ngx_http_amonitor_log_str(&a->sn.str, &e, ebuf, sizeof(ebuf)),
            w->amcf->ack_timeout);
        ngx_http_amonitor_action_fail(a, "INTERNAL",
            "the dedupe store did not answer in time",
            NGX_HTTP_AMONITOR_FORGET);
        return;

    case NGX_HTTP_AMONITOR_ACTION_WAITING:
        ngx_queue_remove(&a->queue);
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;
        ngx_http_amonitor_action_fail(a, "TARGET_UNAVAILABLE",
            "the target did not connect in time", NGX_HTTP_AMONITOR_RELEASE);
        return;

    case NGX_HTTP_AMONITOR_ACTION_SENT: break;

    case NGX_HTTP_AMONITOR_ACTION_LATE:
        /* the late window is over too: the outcome stays unknown */
        ngx_http_amonitor_action_fail(a, "ACK_TIMEOUT",
            "no ack from the target within the late window; the outcome "
            "is unknown",
            NGX_HTTP_AMONITOR_KEEP);
        return;

    default: ngx_http_amonitor_action_free(a); return;
    }

    (void) ngx_atomic_fetch_add(&w->counters->ack_timeouts, 1);

    /*
     * amonitor_cluster: the target of an action handed to its owner may
     * have been forgotten here meanwhile (upstream NULL): the name the
     * panel gave
     */
    ngx_http_amonitor_action_about(a, &about);

    ngx_http_amonitor_action_log_noack(w, a, &about);

    if (w->amcf->late_window == 0) {
        ngx_http_amonitor_action_fail(a, "ACK_TIMEOUT",
            "no ack from the target in time; the outcome is unknown",
            NGX_HTTP_AMONITOR_KEEP);
        return;
    }

    a->state = NGX_HTTP_AMONITOR_ACTION_LATE;

    if (a->panel) {
        ngx_http_amonitor_reply_error(w, a->panel, &about, "ACK_TIMEOUT",
            "no ack from the target in time; the action may still run", 0);

        /* it no longer counts against the panel's limits */
        if (a->counted && a->panel->pending) {
            a->panel->pending--;
        }

        a->counted = 0;
        ngx_http_amonitor_action_unhold(a);
    }

    /* a late ack is still delivered and recorded */
    ngx_http_amonitor_action_timer(a, w->amcf->late_window);
}


/*
 * The line of an ack timeout: at most NGX_HTTP_AMONITOR_DROP_LINES a
 * second per worker, so that a panel's actions to an SDK that hangs
 * cannot fill the disk; the others are counted and their number said
 * (ngx_http_amonitor_noack_say_quiet).
 */
static void
ngx_http_amonitor_action_log_noack(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_action_t *a, ngx_http_amonitor_about_t *about)
{
    u_char    ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t e;

    if (!ngx_http_amonitor_lines_may(&w->noack_lines)) {
        return;
    }

    ngx_http_amonitor_noack_say_quiet(w);

    ngx_log_error(NGX_LOG_ERR, w->cycle->log, 0,
        "amonitor: no ack for action \"%V\" from target \"%V\" "
        "within %M ms",
        ngx_http_amonitor_log_str(&a->sn.str, &e, ebuf, sizeof(ebuf)),
        &about->target_id, w->amcf->ack_timeout);
}


/* an SDK's action_ack: recorded, and its bytes to the panel that asked */
void
ngx_http_amonitor_action_ack(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len)
{
    u_char                       buf[NGX_HTTP_AMONITOR_RESULT_MAX];
    u_char                       sbuf[NGX_HTTP_AMONITOR_STORED_MAX];
    uint32_t                     hash;
    ngx_int_t                    rc;
    ngx_str_t                    id, result, out;
    ngx_uint_t                   want;
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_tstate_t  *ts;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    w = u->worker;
    as = w->actions;

    id.data = (u_char *) env->action_msg_id.data;
    id.len = env->action_msg_id.len;

    hash = ngx_http_amonitor_hash(id.data, id.len);
    a = ngx_http_amonitor_sent_written(as, &id, hash);

    if (a == NULL || a->upstream != u) {
        ngx_http_amonitor_action_ack_other(
            u, env, &id, hash, opcode, data, len);
        return;
    }

    (void) ngx_atomic_fetch_add(&w->counters->acks, 1);

    /* its claim, long out of the cache, loads while the reply is made */
    if (w->store->prefetch) {
        w->store->prefetch(w->store, hash, 0, a->claimed);
    }

    ngx_http_amonitor_store_rtt(w->store, ngx_current_msec - a->sent_at);

    if (!env->success && u->tstate && !a->remote) {
        /* a remote one's: counted by the worker that read it (above) */
        ts = u->tstate;
        (void) ngx_atomic_fetch_add(&ts->failures, 1);
    }

    ngx_http_amonitor_action_ack_result(env, &result, buf);

    /* the SDK's ack, marked as the last reply, for the panel that asked */
    rc = NGX_DECLINED;
    want = opcode;

    if (a->panel) {
        want = a->panel->encoding ? a->panel->encoding : opcode;

        rc = (want == opcode)
            ? ngx_http_amonitor_reply_stamp(
                w, u, env, opcode, data, len, 1, &out)
            : ngx_http_amonitor_reply_convert(w, u, env, 1, &out);

        if (rc != NGX_OK) {
            /* never silent: the panel waits for this as the last reply */
            rc = ngx_http_amonitor_reply_ack_unfit(
                w, a->panel, u, env, want == AMON_WS_OP_BINARY, &out);
        }
    }

    /*
     * Recorded first; the ack goes once the store has it (at once with
     * the zone): a repeat of the msg_id, wherever it is sent, after the
     * ack says "done", never "pending".
     */
    ngx_http_amonitor_action_finish(
        a, NGX_HTTP_AMONITOR_CLAIM_DONE, &result, sbuf);

    if (rc == NGX_OK) {
        ngx_http_amonitor_query_answer_stored(
            w, a->panel, &a->sn.str, want, out.data, out.len);
    }

    ngx_http_amonitor_action_audit(
        a, env->success ? "ack_success" : "ack_failure", NULL);

    ngx_http_amonitor_action_free(a);
}


/*
 * An ack that no action of this worker waits for: with amonitor_cluster,
 * one for an action of another worker (sent back to it, and recorded
 * here too when this worker holds its claim: the same record that worker
 * writes); else dropped.
 */
static void
ngx_http_amonitor_action_ack_other(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_str_t *id, uint32_t hash, ngx_uint_t opcode,
    u_char *data, size_t len)
{
    u_char                      buf[NGX_HTTP_AMONITOR_RESULT_MAX];
    u_char                      sbuf[NGX_HTTP_AMONITOR_STORED_MAX];
    u_char                      ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_int_t                   rc;
    ngx_str_t                   result, e;
    ngx_http_amonitor_tstate_t *ts;

    rc = ngx_http_amonitor_cluster_ack(u, id, opcode, data, len);

    if (rc != NGX_OK && rc != NGX_DONE) {
        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_INFO, &u->log, 0,
                "amonitor: ack for an unknown action \"%V\" dropped",
                ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)));
        }

        return;
    }

    if (!env->success && u->tstate) {
        ts = u->tstate;
        (void) ngx_atomic_fetch_add(&ts->failures, 1);
    }

    if (rc == NGX_DONE) {
        ngx_http_amonitor_action_ack_result(env, &result, buf);
        ngx_http_amonitor_action_record(u->worker->store, id, hash, &u->id,
            NGX_HTTP_AMONITOR_CLAIM_DONE, &result, sbuf);
    }
}


/*
 * What the store keeps of an ack: its payload, or its gist when it is
 * protobuf or too long ("buf": NGX_HTTP_AMONITOR_RESULT_MAX bytes).
 */
static void
ngx_http_amonitor_action_ack_result(
    amon_envelope_t *env, ngx_str_t *result, u_char *buf)
{
    if (!env->binary && env->payload.len <= NGX_HTTP_AMONITOR_RESULT_MAX) {
        result->data = (u_char *) env->payload.data;
        result->len = env->payload.len;
        return;
    }

    result->data = buf;
    ngx_http_amonitor_reply_result(result, NGX_HTTP_AMONITOR_RESULT_MAX,
        env->success, env->message, NULL, env->action_msg_id);
}


/* end an action with an error, and say what becomes of its claim */
void
ngx_http_amonitor_action_fail(ngx_http_amonitor_action_t *a, const char *code,
    const char *message, ngx_http_amonitor_claim_end_e end)
{
    ngx_http_amonitor_about_t   about;
    ngx_http_amonitor_tstate_t *ts;
    ngx_http_amonitor_worker_t *w;

    w = a->worker;

    (void) ngx_atomic_fetch_add(&w->counters->errors, 1);

    if (a->upstream && a->upstream->tstate) {
        ts = a->upstream->tstate;
        (void) ngx_atomic_fetch_add(&ts->failures, 1);
    }

    if (end == NGX_HTTP_AMONITOR_RELEASE) {
        w->store->release(w->store, &a->sn.str);

    } else if (end == NGX_HTTP_AMONITOR_KEEP) {
        ngx_http_amonitor_action_keep(a, code, message);
    }

    if (a->panel) {
        ngx_http_amonitor_action_about(a, &about);
        ngx_http_amonitor_reply_error(w, a->panel, &about, code, message, 1);
    }

    ngx_http_amonitor_action_audit(a, "error", code);

    ngx_http_amonitor_action_free(a);
}


/*
 * The action may have run and will not be acked now: its claim ends as
 * FAILED with the error, so that a retry is answered and never runs it
 * again (an open claim would wait for its owner, or expire in Redis).
 */
void
ngx_http_amonitor_action_keep(
    ngx_http_amonitor_action_t *a, const char *code, const char *message)
{
    u_char                    sbuf[NGX_HTTP_AMONITOR_STORED_MAX];
    ngx_str_t                 stored;
    ngx_http_amonitor_about_t about;

    ngx_http_amonitor_action_about(a, &about);

    stored.data = sbuf;

    if (ngx_http_amonitor_stored_error(&stored, &about.target_id, code, message)
        == NGX_OK) {
        a->worker->store->finish(a->worker->store, &a->sn.str,
            (uint32_t) a->sn.node.key, NGX_HTTP_AMONITOR_CLAIM_FAILED, &stored);
    }
}


/*
 * The claim ends as DONE or FAILED: the store keeps the name of the
 * target the action went to with its result ("buf": room for
 * NGX_HTTP_AMONITOR_STORED_MAX bytes), so that what a repeat or an
 * action_status says names that target, and only panels whose token
 * covers it get the result.
 */
static void
ngx_http_amonitor_action_finish(ngx_http_amonitor_action_t *a,
    ngx_http_amonitor_claim_e state, ngx_str_t *result, u_char *buf)
{
    ngx_http_amonitor_about_t about;

    ngx_http_amonitor_action_about(a, &about);

    ngx_http_amonitor_action_record(a->worker->store, &a->sn.str,
        (uint32_t) a->sn.node.key, &about.target_id, state, result, buf);
}


/*
 * The store's record of "msg_id" (of "hash"): the name of the target with
 * the result ("buf": room for NGX_HTTP_AMONITOR_STORED_MAX bytes).  The
 * same bytes whichever worker writes it, the one whose panel asked or, in
 * a cluster, the owner that ran the action for it.
 */
static void
ngx_http_amonitor_action_record(ngx_http_amonitor_store_t *st,
    ngx_str_t *msg_id, uint32_t hash, ngx_str_t *target,
    ngx_http_amonitor_claim_e state, ngx_str_t *result, u_char *buf)
{
    ngx_str_t stored;

    stored.data = buf;
    ngx_http_amonitor_stored_pack(&stored, target, result);

    st->finish(st, msg_id, hash, state, &stored);
}


/* the outcome of an action for the audit log, if there is one */
void
ngx_http_amonitor_action_audit(
    ngx_http_amonitor_action_t *a, const char *outcome, const char *code)
{
    ngx_http_amonitor_audit_rec_t rec;

    if (a->worker->amcf->audit == NULL) {
        return;
    }

    ngx_memzero(&rec, sizeof(ngx_http_amonitor_audit_rec_t));

    if (a->panel) {
        rec.panel = a->panel->connection->addr_text;
    }

    if (a->upstream) {
        rec.target = a->upstream->id;

    } else {
        rec.target = a->target_id.len ? a->target_id : a->target_url;
    }

    rec.action = a->action;
    rec.msg_id = a->sn.str;
    rec.outcome = outcome;
    rec.code = code;
    rec.rtt = (a->state == NGX_HTTP_AMONITOR_ACTION_SENT
                  || a->state == NGX_HTTP_AMONITOR_ACTION_LATE)
        ? (ngx_msec_int_t) (ngx_current_msec - a->sent_at)
        : -1;

    ngx_http_amonitor_audit(a->worker, &rec);
}


/* the panel no longer holds the bytes of the action's frame */
static void
ngx_http_amonitor_action_unhold(ngx_http_amonitor_action_t *a)
{
    if (a->held && a->panel) {
        a->panel->actions_held -= ngx_min(a->held, a->panel->actions_held);
    }

    a->held = 0;
}


/*
 * The action lets go of its frame: queued for the SDK, or the action
 * ends.  One handed to the target's owner in the cluster stays counted
 * for its panel until it ends: the owner may hold its frame as long,
 * waiting for its connection to the SDK.
 */
void
ngx_http_amonitor_action_drop_msg(ngx_http_amonitor_action_t *a)
{
    if (!a->remote) {
        ngx_http_amonitor_action_unhold(a);
    }

    if (a->msg) {
        ngx_http_amonitor_msg_release(&a->worker->frames, a->msg);
        a->msg = NULL;
    }
}


void
ngx_http_amonitor_action_free(ngx_http_amonitor_action_t *a)
{
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_actions_t *as;

    w = a->worker;
    as = w->actions;

    ngx_http_amonitor_action_untimer(a);

    if (a->in_sent) {
        ngx_http_amonitor_sent_del(as, a);
    }

    if (a->state == NGX_HTTP_AMONITOR_ACTION_WAITING
        || a->state == NGX_HTTP_AMONITOR_ACTION_QUEUED) {
        ngx_queue_remove(&a->queue);
    }

    if (a->msg) {
        ngx_http_amonitor_msg_release(&w->frames, a->msg);
        a->msg = NULL;
    }

    ngx_http_amonitor_action_unhold(a);

    if (a->panel && a->counted && a->panel->pending) {
        a->panel->pending--;
    }

    a->counted = 0;

    ngx_queue_remove(&a->all);

    if (a->state == NGX_HTTP_AMONITOR_ACTION_CLAIMING) {
        /* the store's callback still holds it: it frees it */
        a->state = NGX_HTTP_AMONITOR_ACTION_ABANDONED;
        a->panel = NULL;
        return;
    }

    ngx_http_amonitor_action_dealloc(as, a);
}


/*
 * The worker exits (amonitor_cluster): actions it handed to the worker
 * holding their target may run there, and their acks would come back to
 * this worker only.  Their claims end as FAILED, as for a connection that
 * closed after the write, so that a retry is answered and never runs them
 * again (an open claim would expire, and a retry then run them twice).
 */
void
ngx_http_amonitor_action_exit_remote(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t                 *q, *next;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = w->actions;

    for (q = ngx_queue_head(&as->all); q != ngx_queue_sentinel(&as->all);
         q = next) {
        next = ngx_queue_next(q);
        a = ngx_queue_data(q, ngx_http_amonitor_action_t, all);

        if (a->remote
            && (a->state == NGX_HTTP_AMONITOR_ACTION_SENT
                || a->state == NGX_HTTP_AMONITOR_ACTION_LATE)) {
            ngx_http_amonitor_action_fail(a, "TARGET_DISCONNECTED",
                "the agent worker that sent the action exited before its "
                "ack; the outcome is unknown",
                NGX_HTTP_AMONITOR_KEEP);
        }
    }
}


/*
 * The target's connection failed or closed.  Waiting actions never reached
 * it; sent ones did if their bytes were written: they may have run.
 */
void
ngx_http_amonitor_action_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected)
{
    ngx_queue_t                 *q, *next;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = u->worker->actions;

    while (!ngx_queue_empty(&u->waiting)) {
        q = ngx_queue_head(&u->waiting);
        ngx_queue_remove(q);

        a = ngx_queue_data(q, ngx_http_amonitor_action_t, queue);
        a->state = NGX_HTTP_AMONITOR_ACTION_NEW;

        ngx_http_amonitor_action_fail(a, "TARGET_UNAVAILABLE",
            u->tls_failed ? NGX_HTTP_AMONITOR_TLS_FAILED
                          : "cannot connect to the target",
            NGX_HTTP_AMONITOR_RELEASE);
    }

    if (!connected) {
        return;
    }

    for (q = ngx_queue_head(&as->all); q != ngx_queue_sentinel(&as->all);
         q = next) {
        next = ngx_queue_next(q);
        a = ngx_queue_data(q, ngx_http_amonitor_action_t, all);

        if (a->upstream != u) {
            continue;
        }

        if (a->state != NGX_HTTP_AMONITOR_ACTION_SENT
            && a->state != NGX_HTTP_AMONITOR_ACTION_LATE) {
            continue;
        }

        if (u->wc.sent_bytes >= a->end_offset) {
            /* written: it may have run, so the claim stays */
            ngx_http_amonitor_action_fail(a, "TARGET_DISCONNECTED",
                "the target disconnected before its ack; the outcome "
                "is unknown",
                NGX_HTTP_AMONITOR_KEEP);

        } else {
            ngx_http_amonitor_action_fail(a, "TARGET_UNAVAILABLE",
                "the target disconnected before the action was sent",
                NGX_HTTP_AMONITOR_RELEASE);
        }
    }
}


/* the panel closed: its actions go on without it */
void
ngx_http_amonitor_action_panel_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *panel)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_action_t  *a;
    ngx_http_amonitor_actions_t *as;

    as = w->actions;

    /*
     * Every action of the panel, also those that no longer count against
     * its limit (past ACK_TIMEOUT): none may keep a pointer to it.
     */
    for (q = ngx_queue_head(&as->all); q != ngx_queue_sentinel(&as->all);
         q = ngx_queue_next(q)) {
        a = ngx_queue_data(q, ngx_http_amonitor_action_t, all);

        if (a->panel == panel) {
            /* acks are still recorded; there is no one to tell */
            a->panel = NULL;
        }
    }

    panel->pending = 0;
}
