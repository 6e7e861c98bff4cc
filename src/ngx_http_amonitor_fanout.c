/*
 * Copyright (C) AMonitor authors
 *
 * Fan-out: one shared frame to the panels that take everything and to the
 * subscribers of its target (never a walk over every panel), converted
 * once for the panels that chose the other encoding; and the snapshot a
 * new panel gets, with the filter that keeps the same heartbeat or state
 * arriving live right after from being told twice.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_subscribe.h"
#include "ngx_http_amonitor_fanout.h"


/*
 * What a panel's snapshot told it about one target, so that the same
 * heartbeat or the same state arriving live right after is not told twice.
 */
typedef struct {
    uint32_t target; /* hash of the target's name */
    uint32_t hb; /* hash of the heartbeat's msg_id */
    u_char   hb_pending;
    u_char   state_pending;
    u_char   up;
} ngx_http_amonitor_seen_t;


/* a frame on its way to the panels, with what converting it needs */
typedef struct {
    ngx_http_amonitor_msg_t      *msg;
    ngx_http_amonitor_msg_t      *alt; /* in the other encoding */
    ngx_uint_t                    opcode;
    ngx_uint_t                    tried; /* to convert */
    ngx_http_amonitor_upstream_t *u;
    amon_envelope_t              *env;
    u_char                       *data;
    size_t                        len;
    ngx_http_amonitor_live_t     *live;
} ngx_http_amonitor_fanout_t;


static void ngx_http_amonitor_fanout_deliver(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_fanout_t *f);
static ngx_http_amonitor_msg_t *ngx_http_amonitor_fanout_convert(
    ngx_http_amonitor_worker_t *w, ngx_uint_t want,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len);
static ngx_uint_t ngx_http_amonitor_fanout_seen(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_live_t *live);
static ngx_int_t ngx_http_amonitor_fanout_snapshot_one(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc,
    ngx_http_amonitor_tsnap_t *snap);


/*
 * Fan a shared frame about target "u" out to the panels that take
 * everything and to the target's subscribers; droppable for slow panels.
 * A panel that chose the other encoding gets the message converted, once
 * for all such panels: from "env" (an SDK's, with "u"), else from the
 * JSON text "data" (the agent's own).  A frame about a target ("live") is
 * not sent to a panel whose snapshot told it the same already.
 */
void
ngx_http_amonitor_fanout_broadcast(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t opcode,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_http_amonitor_live_t *live)
{
    ngx_queue_t               *q, *h;
    ngx_http_amonitor_sub_t   *s;
    ngx_http_amonitor_subs_t  *subs;
    ngx_http_amonitor_link_t  *l;
    ngx_http_amonitor_topic_t *t;
    ngx_http_amonitor_fanout_t f;

    f.msg = msg;
    f.alt = NULL;
    f.opcode = opcode;
    f.tried = 0;
    f.u = u;
    f.env = env;
    f.data = data;
    f.len = len;
    f.live = live;

    msg->refs++;
    subs = w->subs;

    h = &subs->all;

    for (q = ngx_queue_head(h); q != ngx_queue_sentinel(h);
         q = ngx_queue_next(q)) {
        s = ngx_queue_data(q, ngx_http_amonitor_sub_t, queue);
        ngx_http_amonitor_fanout_deliver(w, s->wc, &f);
    }

    t = ngx_http_amonitor_subscribe_topic(w, u);

    if (t) {
        h = &t->links;

        for (q = ngx_queue_head(h); q != ngx_queue_sentinel(h);
             q = ngx_queue_next(q)) {
            l = ngx_queue_data(q, ngx_http_amonitor_link_t, target);
            ngx_http_amonitor_fanout_deliver(w, l->wc, &f);
        }
    }

    (void) ngx_atomic_fetch_add(&w->counters->forwarded, 1);

    ngx_http_amonitor_msg_release(&w->frames, msg);

    if (f.alt) {
        ngx_http_amonitor_msg_release(&w->frames, f.alt);
    }
}


static void
ngx_http_amonitor_fanout_deliver(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_fanout_t *f)
{
    ngx_uint_t               want;
    ngx_http_amonitor_msg_t *m;

    if (wc->close_sent) {
        return;
    }

    if (wc->unseen && f->live && ngx_http_amonitor_fanout_seen(wc, f->live)) {
        return;
    }

    want = wc->encoding ? wc->encoding : f->opcode;
    m = f->msg;

    if (want != f->opcode) {
        if (!f->tried) {
            f->tried = 1;
            f->alt = ngx_http_amonitor_fanout_convert(
                w, want, f->u, f->env, f->data, f->len);
        }

        m = f->alt;
        if (m == NULL) {
            return;
        }
    }

    if (ngx_http_amonitor_conn_send(wc, m, 0) == NGX_OK) {
        return;
    }

    if (wc->dropped++ % 1000 == 0) {
        ngx_log_error(NGX_LOG_WARN, wc->connection->log, 0,
            "amonitor: panel #%ui is slow: its send queue "
            "is full, %ui heartbeats/events dropped for it",
            wc->id, wc->dropped);
    }

    (void) ngx_atomic_fetch_add(&w->counters->dropped, 1);
}


/* the message as a frame in the other encoding ("want"), or NULL */
static ngx_http_amonitor_msg_t *
ngx_http_amonitor_fanout_convert(ngx_http_amonitor_worker_t *w, ngx_uint_t want,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len)
{
    ngx_int_t                rc;
    ngx_str_t                out;
    amon_envelope_t          own;
    ngx_http_amonitor_msg_t *m;

    if (env) {
        rc = ngx_http_amonitor_reply_convert(w, u, env, 0, &out);

    } else {
        if (amon_envelope_decode_json(&own, data, len) != AMON_OK) {
            return NULL;
        }

        rc = ngx_http_amonitor_reply_convert(w, NULL, &own, 0, &out);
        amon_envelope_release(&own);
    }

    if (rc != NGX_OK) {
        return NULL;
    }

    m = ngx_http_amonitor_msg_frame(&w->frames, want, out.data, out.len, 0);
    if (m) {
        m->refs++;
    }

    return m;
}


/*
 * The first live heartbeat (or state) of a target after the snapshot:
 * 1 when the snapshot sent the same one, so it is not sent again.  Either
 * way the entry is used up: what follows is new.
 */
static ngx_uint_t
ngx_http_amonitor_fanout_seen(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_live_t *live)
{
    ngx_uint_t                i;
    ngx_http_amonitor_seen_t *seen;

    if (live->target_hash == 0) {
        live->target_hash =
            ngx_http_amonitor_hash(live->target->data, live->target->len) | 1;
    }

    seen = wc->seen->elts;

    for (i = 0; i < wc->seen->nelts; i++) {
        if (seen[i].target != live->target_hash) {
            continue;
        }

        if (live->heartbeat && seen[i].hb_pending) {
            seen[i].hb_pending = 0;
            wc->unseen--;
            return seen[i].hb == live->value;
        }

        if (!live->heartbeat && seen[i].state_pending) {
            seen[i].state_pending = 0;
            wc->unseen--;
            return seen[i].up == live->value;
        }

        return 0;
    }

    return 0;
}


/*
 * A new panel first learns what the zone knows, whichever worker learned
 * it: the target_status of every target this worker serves (or learned at
 * run time), then the last heartbeat of each.  Queued before any live
 * frame, so nothing is reordered; what it said is remembered so that the
 * same heartbeat or state arriving live is not sent twice.
 */
void
ngx_http_amonitor_fanout_snapshot(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc)
{
    ngx_uint_t                 i;
    ngx_http_amonitor_tsnap_t *snap;

    if (w->store == NULL || w->store->zone == NULL) {
        return;
    }

    if (wc->seen) {
        /* a subscribe: what the last snapshot said no longer counts */
        wc->seen->nelts = 0;
        wc->unseen = 0;

    } else {
        wc->seen = ngx_array_create(
            wc->connection->pool, 4, sizeof(ngx_http_amonitor_seen_t));
    }

    snap = ngx_alloc(sizeof(ngx_http_amonitor_tsnap_t), wc->connection->log);

    if (wc->seen == NULL || snap == NULL) {
        if (snap) {
            ngx_free(snap);
        }

        return;
    }

    for (i = 0;
         ngx_http_amonitor_store_target_copy(w->store, i, snap) == NGX_OK;
         i++) {
        if (ngx_http_amonitor_target_find(w, &snap->id) == NULL) {
            /*
             * kept by an older configuration, or a learned target that
             * was forgotten: not served any more
             */
            continue;
        }

        if (!ngx_http_amonitor_subscribe_wants(wc, &snap->id)) {
            continue;
        }

        if (ngx_http_amonitor_fanout_snapshot_one(w, wc, snap) != NGX_OK) {
            break;
        }
    }

    ngx_free(snap);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
        "amonitor panel #%ui snapshot: %ui targets", wc->id, wc->seen->nelts);
}


static ngx_int_t
ngx_http_amonitor_fanout_snapshot_one(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_tsnap_t *snap)
{
    ngx_str_t                 out;
    ngx_http_amonitor_seen_t *seen;

    if (ngx_http_amonitor_reply_target_state(w, &snap->id, &snap->url, snap->up,
            (int64_t) snap->since, snap->reason.len ? &snap->reason : NULL,
            &out)
        != NGX_OK) {
        return NGX_OK;
    }

    if (ngx_http_amonitor_conn_send_data(
            wc, AMON_WS_OP_TEXT, out.data, out.len, 0)
        != NGX_OK) {
        return NGX_ERROR;
    }

    seen = ngx_array_push(wc->seen);
    if (seen == NULL) {
        return NGX_ERROR;
    }

    seen->target = ngx_http_amonitor_hash(snap->id.data, snap->id.len) | 1;
    seen->up = (u_char) snap->up;
    seen->state_pending = 1;
    seen->hb_pending = 0;
    seen->hb = snap->hb_hash;
    wc->unseen++;

    if (snap->hb_len == 0) {
        return NGX_OK;
    }

    if (ngx_http_amonitor_conn_send_data(
            wc, snap->hb_opcode, snap->hb, snap->hb_len, 0)
        != NGX_OK) {
        return NGX_ERROR;
    }

    seen->hb_pending = 1;
    wc->unseen++;

    return NGX_OK;
}
