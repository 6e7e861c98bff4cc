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
#include "ngx_http_amonitor_fanout_told.h"
#include "ngx_http_amonitor_fanout_seen.h"


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


#if (defined __GNUC__ || defined __clang__)
#define ngx_http_amonitor_prefetch(p) __builtin_prefetch(p)
#else
#define ngx_http_amonitor_prefetch(p)
#endif


static void ngx_http_amonitor_fanout_list(ngx_http_amonitor_worker_t *w,
    ngx_queue_t *h, size_t off, ngx_http_amonitor_fanout_t *f);
static void ngx_http_amonitor_fanout_deliver(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_fanout_t *f);
static ngx_http_amonitor_msg_t *ngx_http_amonitor_fanout_convert(
    ngx_http_amonitor_worker_t *w, ngx_uint_t want,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len);
static ngx_int_t ngx_http_amonitor_fanout_snapshot_send(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc,
    ngx_http_amonitor_upstream_t *u, ngx_uint_t opcode, u_char *data,
    size_t len);
static ngx_uint_t ngx_http_amonitor_fanout_snapshot_record(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc, ngx_uint_t i,
    ngx_http_amonitor_tsnap_t *snap, ngx_uint_t *full);
static ngx_int_t ngx_http_amonitor_fanout_snapshot_one(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc, ngx_uint_t i,
    ngx_http_amonitor_upstream_t *u, ngx_http_amonitor_tsnap_t *snap);
static void ngx_http_amonitor_fanout_unconverted(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_fanout_t *f,
    ngx_uint_t want);
static void ngx_http_amonitor_fanout_slow(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc);
static void ngx_http_amonitor_fanout_snapshot_pass(ngx_event_t *ev);


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
    ngx_http_amonitor_subs_t  *subs;
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

    ngx_http_amonitor_fanout_list(w, &subs->all,
        offsetof(ngx_http_amonitor_sub_t, wc)
            - offsetof(ngx_http_amonitor_sub_t, queue),
        &f);

    t = ngx_http_amonitor_subscribe_topic(w, u);

    if (t) {
        ngx_http_amonitor_fanout_list(w, &t->links,
            offsetof(ngx_http_amonitor_link_t, wc)
                - offsetof(ngx_http_amonitor_link_t, target),
            &f);
    }

    (void) ngx_atomic_fetch_add(&w->counters->forwarded, 1);

    ngx_http_amonitor_msg_release(&w->frames, msg);

    if (f.alt) {
        ngx_http_amonitor_msg_release(&w->frames, f.alt);
    }
}


/*
 * Deliver to the panels of list "h", whose entries hold the panel's
 * connection "off" bytes after their link in the list.  A delivery is
 * mostly a send(), and the kernel's work for a thousand of them pushes
 * the panels' structures out of the cache: each would wait for memory
 * three times (the list entry, the connection, its write event).  They
 * are fetched ahead instead, while the sends of the panels before them
 * run: the entry three panels ahead, the connection two ahead, the write
 * event one ahead.  A delivery never takes a panel out of the list.
 */
static void
ngx_http_amonitor_fanout_list(ngx_http_amonitor_worker_t *w, ngx_queue_t *h,
    size_t off, ngx_http_amonitor_fanout_t *f)
{
    ngx_queue_t              *q, *q1, *q2;
    ngx_http_amonitor_conn_t *wc;

#define ngx_http_amonitor_wc_of(q) \
    (*(ngx_http_amonitor_conn_t **) ((u_char *) (q) + off))

    q = ngx_queue_head(h);
    q1 = (q != h) ? ngx_queue_next(q) : h;
    q2 = (q1 != h) ? ngx_queue_next(q1) : h;

    while (q != h) {

        if (q2 != h) {
            ngx_http_amonitor_prefetch(ngx_queue_next(q2));
            ngx_http_amonitor_prefetch(ngx_http_amonitor_wc_of(q2));
        }

        if (q1 != h) {
            wc = ngx_http_amonitor_wc_of(q1);
            ngx_http_amonitor_prefetch(wc->wev);
        }

        ngx_http_amonitor_fanout_deliver(w, ngx_http_amonitor_wc_of(q), f);

        q = q1;
        q1 = q2;
        q2 = (q2 != h) ? ngx_queue_next(q2) : h;
    }

#undef ngx_http_amonitor_wc_of
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

    if (wc->seen && f->live && ngx_http_amonitor_seen_match(wc, f->live)) {
        return;
    }

    want = wc->encoding ? wc->encoding : f->opcode;
    m = f->msg;

    if (want != f->opcode) {
        if (!f->tried) {
            f->tried = 1;
            /* without "env" the text is the agent's own: no SDK's */
            f->alt = ngx_http_amonitor_fanout_convert(
                w, want, f->env ? f->u : NULL, f->env, f->data, f->len);
        }

        m = f->alt;
        if (m == NULL) {
            ngx_http_amonitor_fanout_unconverted(w, wc, f, want);
            return;
        }
    }

    if (ngx_http_amonitor_conn_send_now(wc, m) == NGX_OK) {
        return;
    }

    ngx_http_amonitor_fanout_slow(w, wc);
}


/* a frame dropped for a panel whose send queue is full (live or snapshot) */
static void
ngx_http_amonitor_fanout_slow(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc)
{
    if (wc->dropped++ % 1000 == 0) {
        ngx_log_error(NGX_LOG_WARN, wc->connection->log, 0,
            "amonitor: panel #%ui is slow: its send queue "
            "is full, %ui heartbeats/events dropped for it",
            wc->id, wc->dropped);
    }

    (void) ngx_atomic_fetch_add(&w->counters->dropped, 1);
}


/*
 * A message that cannot be had in the encoding a panel chose (too big for
 * amonitor_max_message_size once converted, or members the schema cannot
 * hold, such as heartbeat metrics that are not an object): dropped for
 * that panel as for a slow one, counted, and said every 100 such messages.
 */
static void
ngx_http_amonitor_fanout_unconverted(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_fanout_t *f,
    ngx_uint_t want)
{
    (void) ngx_atomic_fetch_add(&w->counters->dropped, 1);

    if (f->tried != 1) {
        /* said for this message already */
        return;
    }

    f->tried = 2;

    if (w->unconverted++ % 100) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, f->u ? &f->u->log : wc->connection->log, 0,
        "amonitor: a message cannot be converted to %s for panel #%ui "
        "(too big in that encoding, or not in the schema): dropped for the "
        "panels that chose it (%ui so far)",
        want == AMON_WS_OP_TEXT ? "JSON" : "protobuf", wc->id, w->unconverted);
}


/*
 * The message as a frame in the other encoding ("want"), or NULL: from
 * "env", else from the frame "data" (an SDK's when "u" is set).
 */
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
        /* the agent's own JSON text, or a kept heartbeat in either form */
        rc = (want == AMON_WS_OP_TEXT)
            ? amon_envelope_decode_pb(&own, data, len, &w->allocator)
            : amon_envelope_decode_json(&own, data, len);

        if (rc == AMON_OK) {
            rc = ngx_http_amonitor_reply_convert(w, u, &own, 0, &out);

        } else {
            rc = NGX_ERROR;
        }

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


/* the panel is gone: its filter with it */
void
ngx_http_amonitor_fanout_panel_gone(ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_seen_end(wc);
}


/*
 * A new panel first learns what the zone knows, whichever worker learned
 * it: the target_status of every target this worker serves (or learned at
 * run time), then the last heartbeat of each.  Queued before any live
 * frame, so nothing is reordered; what it said that a live frame of this
 * worker may repeat is remembered (fanout_seen.c), for a bounded time.
 * A panel that names ids only is told of each by looking it up; one
 * whose patterns all start with text, of the records whose ids start
 * with it (subscribe_index.c); for others every record's id is read, and
 * what they want copied.
 * Returns what it cost: one per id looked up or record read, one more
 * per target told.
 */
ngx_uint_t
ngx_http_amonitor_fanout_snapshot(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc)
{
    ngx_str_t                  id, *ids;
    ngx_uint_t                 i, n, np, told, full, *places;
    ngx_http_amonitor_tsnap_t *snap;

    if (w->store == NULL || w->store->zone == NULL) {
        return 0;
    }

    /* a subscribe: what the last snapshot said no longer counts */
    ngx_http_amonitor_seen_end(wc);

    snap = ngx_alloc(sizeof(ngx_http_amonitor_tsnap_t), wc->connection->log);
    if (snap == NULL) {
        return 0;
    }

    told = 0;
    full = 0;

    if (ngx_http_amonitor_subscribe_ids(wc, &ids, &n) == NGX_OK) {
        /* ids only: each looked up, not every record read */
        for (i = 0; i < n; i++) {
            if (ngx_http_amonitor_store_target_copy_id(w->store, &ids[i], snap)
                == NGX_OK) {
                told += ngx_http_amonitor_fanout_snapshot_record(
                    w, wc, NGX_HTTP_AMONITOR_TOLD_NONE, snap, &full);
            }
        }

    } else if (ngx_http_amonitor_index_places(w, wc->sub, &places, &np, &n)
        == NGX_OK) {
        /* patterns that start with text: the ids that start with it */
        for (i = 0; i < np; i++) {
            if (ngx_http_amonitor_store_target_copy(w->store, places[i], snap)
                == NGX_OK) {
                told += ngx_http_amonitor_fanout_snapshot_record(
                    w, wc, places[i], snap, &full);
            }
        }

        ngx_free(places);

    } else {
        /* the id first: only a record the panel wants is copied */
        for (n = 0;
             ngx_http_amonitor_store_target_id(w->store, n, &id) == NGX_OK;
             n++) {
            if (ngx_http_amonitor_subscribe_wants(wc, &id)
                && ngx_http_amonitor_store_target_copy(w->store, n, snap)
                    == NGX_OK) {
                told += ngx_http_amonitor_fanout_snapshot_record(
                    w, wc, n, snap, &full);
            }
        }
    }

    ngx_free(snap);

    /* what this pass spent on snapshots: new panels wait for the next */
    w->snapshot_spent += n + told;

    w->snapshot_pass.handler = ngx_http_amonitor_fanout_snapshot_pass;
    w->snapshot_pass.data = w;
    w->snapshot_pass.log = w->cycle->log;
    ngx_post_event(&w->snapshot_pass, &ngx_posted_next_events);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
        "amonitor panel #%ui snapshot of %ui records, %ui frames to filter",
        wc->id, n,
        wc->seen ? ((ngx_http_amonitor_seen_tab_t *) wc->seen)->unseen : 0);

    return n + told;
}


/*
 * Record "i" (copied in "snap"; NGX_HTTP_AMONITOR_TOLD_NONE: found by
 * its id) told to the panel, or counted as dropped once its queue is
 * "full".  1 when it is one of the worker's targets, 0 when it is kept
 * by an older configuration or a learned target that was forgotten: not
 * served any more.
 */
static ngx_uint_t
ngx_http_amonitor_fanout_snapshot_record(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_uint_t i, ngx_http_amonitor_tsnap_t *snap,
    ngx_uint_t *full)
{
    ngx_http_amonitor_upstream_t *u;

    /* the upstream found once for all panels while nothing changes */
    (void) ngx_http_amonitor_told(w, i, snap, &u, NULL);

    if (u == NULL) {
        return 0;
    }

    if (*full) {
        /* the queue is full: what is left is dropped, and counted */
        ngx_http_amonitor_fanout_slow(w, wc);

        if (snap->hb_len) {
            ngx_http_amonitor_fanout_slow(w, wc);
        }

        return 1;
    }

    if (ngx_http_amonitor_fanout_snapshot_one(w, wc, i, u, snap) != NGX_OK) {
        *full = 1;
    }

    return 1;
}


/*
 * A reconnect storm (hundreds of panels at once, thousands of targets):
 * a pass of the event loop builds new panels' snapshots up to
 * NGX_HTTP_AMONITOR_SNAPSHOT_PASS records and targets (one at least),
 * the others are opened in the next passes, so that the events of the
 * panels already open (their pings, their actions) are handled between.
 * The budget starts again with the next pass: the event posted for it
 * comes before the takeovers put off in this one.
 */
ngx_uint_t
ngx_http_amonitor_fanout_snapshot_later(ngx_http_amonitor_worker_t *w)
{
    return w->snapshot_spent >= NGX_HTTP_AMONITOR_SNAPSHOT_PASS;
}


static void
ngx_http_amonitor_fanout_snapshot_pass(ngx_event_t *ev)
{
    ngx_http_amonitor_worker_t *w = ev->data;

    w->snapshot_spent = 0;
}


/*
 * One target's state and last heartbeat.  Only what this worker may still
 * repeat live is remembered.  Its state: this worker tells "up" when its
 * own connection opens and "down" only when an open one closes, so the
 * next state it tells differs from the snapshot's unless the two disagree
 * now (another worker has the target open, this one not yet, or the
 * other way round).  Its heartbeat: every worker fans out each heartbeat
 * that reaches it, so only one this worker has not fanned out yet can
 * come again.
 */
static ngx_int_t
ngx_http_amonitor_fanout_snapshot_one(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_uint_t i, ngx_http_amonitor_upstream_t *u,
    ngx_http_amonitor_tsnap_t *snap)
{
    uint32_t                      target;
    ngx_str_t                     out;
    ngx_uint_t                    up;
    ngx_http_amonitor_seen_t     *seen;
    ngx_http_amonitor_seen_tab_t *tab;
    ngx_http_amonitor_upstream_t *served;

    /* record "i"'s target_state, built once for the panels of a storm */
    if (ngx_http_amonitor_told(w, i, snap, &served, &out) != NGX_OK) {
        return NGX_OK;
    }

    if (ngx_http_amonitor_fanout_snapshot_send(
            w, wc, NULL, AMON_WS_OP_TEXT, out.data, out.len)
        != NGX_OK) {
        if (snap->hb_len) {
            ngx_http_amonitor_fanout_slow(w, wc);
        }

        return NGX_ERROR;
    }

    target = ngx_http_amonitor_hash(snap->id.data, snap->id.len) | 1;
    up = (u->state == NGX_HTTP_AMONITOR_UP_OPEN);
    seen = NULL;

    if ((snap->up != 0) != up) {
        seen = ngx_http_amonitor_seen_add(w, wc, target);

        if (seen) {
            seen->up = (u_char) (snap->up != 0);
            seen->state_pending = 1;
            tab = wc->seen;
            tab->unseen++;
        }
    }

    if (snap->hb_len == 0) {
        return NGX_OK;
    }

    if (ngx_http_amonitor_fanout_snapshot_send(
            w, wc, u, snap->hb_opcode, snap->hb, snap->hb_len)
        != NGX_OK) {
        return NGX_ERROR;
    }

    if (snap->hb_hash == u->hb_sent) {
        /* this worker fanned it out already: not to come again */
        return NGX_OK;
    }

    if (seen == NULL) {
        seen = ngx_http_amonitor_seen_add(w, wc, target);
        if (seen == NULL) {
            /* at worst it is told twice */
            return NGX_OK;
        }
    }

    seen->hb = snap->hb_hash;
    seen->hb_pending = 1;
    tab = wc->seen;
    tab->unseen++;

    return NGX_OK;
}


/*
 * A frame of the snapshot, in the encoding the panel chose (as live
 * frames): NGX_ERROR when the panel's queue has no room (the frame is
 * dropped and counted, as a live one is).  One that cannot
 * be converted is left out and counted as dropped, as a live one would be.
 */
static ngx_int_t
ngx_http_amonitor_fanout_snapshot_send(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_int_t                rc;
    ngx_http_amonitor_msg_t *m;

    if (wc->encoding == 0 || wc->encoding == opcode) {
        rc = ngx_http_amonitor_conn_send_data(wc, opcode, data, len, 0);

    } else {
        m = ngx_http_amonitor_fanout_convert(
            w, wc->encoding, u, NULL, data, len);
        if (m == NULL) {
            (void) ngx_atomic_fetch_add(&w->counters->dropped, 1);
            return NGX_OK;
        }

        rc = ngx_http_amonitor_conn_send(wc, m, 0);
        ngx_http_amonitor_msg_release(&w->frames, m);
    }

    if (rc != NGX_OK) {
        ngx_http_amonitor_fanout_slow(w, wc);
        return NGX_ERROR;
    }

    return NGX_OK;
}
