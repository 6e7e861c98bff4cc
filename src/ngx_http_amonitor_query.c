/*
 * Copyright (C) AMonitor authors
 *
 * Answers the store lets go later.  action_status: what the store knows
 * of an earlier action, answered without executing anything; a query the
 * store answers later outlives its message.  An ack whose result the
 * store records later (Redis) waits until it has it.  A panel that goes
 * meanwhile gets nothing.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_action.h"
#include "ngx_http_amonitor_store.h"


/* an answer that waits for the store, in worker->queries */
typedef struct {
    ngx_queue_t               queue;
    ngx_http_amonitor_conn_t *panel; /* NULL once gone */
} ngx_http_amonitor_due_t;


/* an action_status query the store answers later */
typedef struct {
    ngx_http_amonitor_due_t     due;
    ngx_http_amonitor_worker_t *worker;
    ngx_http_amonitor_about_t   about;
    ngx_str_t                   id; /* the action asked about */
    unsigned                    queued : 1;
} ngx_http_amonitor_query_t;


/* an ack held until its result is stored: the frame as it will go */
typedef struct {
    ngx_http_amonitor_due_t due;
    ngx_uint_t              opcode;
    size_t                  len; /* the bytes follow */
} ngx_http_amonitor_held_t;


static void ngx_http_amonitor_query_answered(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result);
static void ngx_http_amonitor_query_stored(void *data);


void
ngx_http_amonitor_query_start(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, amon_envelope_t *env,
    ngx_http_amonitor_about_t *about)
{
    u_char                    *d, buf[NGX_HTTP_AMONITOR_STORED_MAX];
    ngx_int_t                  rc;
    ngx_str_t                  id, result;
    ngx_http_amonitor_query_t *q;
    ngx_http_amonitor_claim_e  state;

    if (env->action_msg_id.len == 0) {
        ngx_http_amonitor_reply_error(w, wc, about, "INVALID_MESSAGE",
            "action_status needs payload.action_msg_id", 1);
        return;
    }

    if (wc->queries >= w->amcf->queue) {
        /* bounded memory: a panel cannot pile up queries for a slow store */
        ngx_http_amonitor_reply_error(w, wc, about, "RATE_LIMITED",
            "too many action_status queries of this panel are waiting for "
            "the dedupe store",
            1);
        return;
    }

    /* the query outlives the message if the store answers later */
    q = ngx_alloc(sizeof(ngx_http_amonitor_query_t) + about->msg_id.len
            + about->trace_id.len + env->action_msg_id.len,
        wc->connection->log);
    if (q == NULL) {
        ngx_http_amonitor_reply_error(
            w, wc, about, "INTERNAL", "out of memory", 1);
        return;
    }

    d = (u_char *) (q + 1);

    q->worker = w;
    q->due.panel = wc;
    q->about = *about;
    q->about.msg_id.data = d;
    if (about->msg_id.len) {
        d = ngx_cpymem(d, about->msg_id.data, about->msg_id.len);
    }

    q->about.trace_id.data = d;
    if (about->trace_id.len) {
        d = ngx_cpymem(d, about->trace_id.data, about->trace_id.len);
    }

    ngx_str_null(&q->about.target_id);
    q->id.data = d;
    q->id.len = env->action_msg_id.len;
    ngx_memcpy(d, env->action_msg_id.data, env->action_msg_id.len);

    id = q->id;
    result.data = buf;
    result.len = 0;

    rc = w->store->query(
        w->store, &id, &state, &result, ngx_http_amonitor_query_answered, q);

    if (rc == NGX_AGAIN) {
        ngx_queue_insert_tail(&w->queries, &q->due.queue);
        q->queued = 1;
        wc->queries++;
        return;
    }

    if (rc != NGX_OK) {
        state = NGX_HTTP_AMONITOR_CLAIM_ERROR;
    }

    q->queued = 0;
    ngx_http_amonitor_query_answered(q, state, &result);
}


/* the store's answer to an action_status query (the panel may be gone) */
static void
ngx_http_amonitor_query_answered(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result)
{
    ngx_http_amonitor_query_t *q = data;

    const char *name;

    if (q->due.panel == NULL) {
        if (q->queued) {
            ngx_queue_remove(&q->due.queue);
        }

        ngx_free(q);
        return;
    }

    if (q->queued) {
        ngx_queue_remove(&q->due.queue);
        q->due.panel->queries--;
    }

    switch (state) {
    case NGX_HTTP_AMONITOR_CLAIM_PENDING: name = "pending"; break;
    case NGX_HTTP_AMONITOR_CLAIM_DONE: name = "done"; break;
    case NGX_HTTP_AMONITOR_CLAIM_FAILED: name = "failed"; break;
    case NGX_HTTP_AMONITOR_CLAIM_NEW: name = "unknown"; break;

    default:
        ngx_http_amonitor_reply_error(q->worker, q->due.panel, &q->about,
            "INTERNAL", "the dedupe store cannot answer action_status now", 1);
        ngx_free(q);
        return;
    }

    if (state == NGX_HTTP_AMONITOR_CLAIM_PENDING) {
        result->len = 0;
    }

    ngx_http_amonitor_reply_status(
        q->worker, q->due.panel, &q->about, &q->id, name, result);

    ngx_free(q);
}


/*
 * The last reply to an action (its ack), right after its finish: queued
 * for the panel at once where the store has the finish already (the
 * zone), else once the store has it (Redis), so that the panel cannot
 * send the msg_id again, on any connection of any agent, and hear that
 * the action is still pending.
 */
void
ngx_http_amonitor_query_answer_stored(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_str_t *msg_id, ngx_uint_t opcode,
    u_char *data, size_t len)
{
    ngx_http_amonitor_held_t *h;

    if (w->store->stored == NULL) {
        ngx_http_amonitor_conn_answer(wc, opcode, data, len);
        return;
    }

    h = ngx_alloc(sizeof(ngx_http_amonitor_held_t) + len, wc->connection->log);
    if (h == NULL) {
        ngx_http_amonitor_conn_answer(wc, opcode, data, len);
        return;
    }

    h->due.panel = wc;
    h->opcode = opcode;
    h->len = len;
    ngx_memcpy(h + 1, data, len);

    if (w->store->stored(w->store, msg_id, ngx_http_amonitor_query_stored, h)
        == NGX_AGAIN) {
        ngx_queue_insert_tail(&w->queries, &h->due.queue);
        return;
    }

    ngx_http_amonitor_conn_answer(wc, opcode, data, len);
    ngx_free(h);
}


static void
ngx_http_amonitor_query_stored(void *data)
{
    ngx_http_amonitor_held_t *h = data;

    ngx_queue_remove(&h->due.queue);

    if (h->due.panel) {
        ngx_http_amonitor_conn_answer(
            h->due.panel, h->opcode, (u_char *) (h + 1), h->len);
    }

    ngx_free(h);
}


/* a panel went: its queries still due are answered to no one */
void
ngx_http_amonitor_query_panel_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *panel)
{
    ngx_queue_t             *q;
    ngx_http_amonitor_due_t *d;

    for (q = ngx_queue_head(&w->queries); q != ngx_queue_sentinel(&w->queries);
         q = ngx_queue_next(q)) {
        d = ngx_queue_data(q, ngx_http_amonitor_due_t, queue);

        if (d->panel == panel) {
            d->panel = NULL;
        }
    }
}


/* the worker exits: the store's callbacks still free what is due */
void
ngx_http_amonitor_query_exit_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t             *q;
    ngx_http_amonitor_due_t *d;

    for (q = ngx_queue_head(&w->queries); q != ngx_queue_sentinel(&w->queries);
         q = ngx_queue_next(q)) {
        d = ngx_queue_data(q, ngx_http_amonitor_due_t, queue);
        d->panel = NULL;
    }
}
