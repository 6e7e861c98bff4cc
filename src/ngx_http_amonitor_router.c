/*
 * Copyright (C) AMonitor authors
 *
 * The router: decodes every message and sends it on its way.  Heartbeats
 * and events go to every panel with their bytes unchanged; panel actions
 * start their life in action.c; SDK acks end it there; register messages
 * teach the worker a new target.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


/*
 * What a panel's snapshot told it about one target, so that the same
 * heartbeat or the same state arriving live right after is not told twice.
 */
typedef struct {
    uint32_t target; /* crc32 of the target's name */
    uint32_t hb; /* crc32 of the heartbeat's msg_id */
    u_char   hb_pending;
    u_char   state_pending;
    u_char   up;
} ngx_http_amonitor_seen_t;


/* a live frame about a target, as the snapshot filter sees it */
typedef struct {
    ngx_str_t *target;
    uint32_t   target_hash;
    ngx_uint_t heartbeat; /* else a target_status */
    uint32_t   value; /* heartbeat msg_id hash, or 1 for up */
} ngx_http_amonitor_live_t;


static void ngx_http_amonitor_router_register(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env);
static void ngx_http_amonitor_router_broadcast(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t opcode,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_http_amonitor_live_t *live);
static ngx_http_amonitor_msg_t *ngx_http_amonitor_router_convert(
    ngx_http_amonitor_worker_t *w, ngx_uint_t want,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len);
static ngx_uint_t ngx_http_amonitor_router_seen(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_live_t *live);
static void ngx_http_amonitor_router_target_status(
    ngx_http_amonitor_upstream_t *u, const char *state, const char *reason);
static ngx_http_amonitor_tstate_t *ngx_http_amonitor_router_tstate(
    ngx_http_amonitor_upstream_t *u);
static ngx_int_t ngx_http_amonitor_router_snapshot_one(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc,
    ngx_http_amonitor_tsnap_t *snap);


void
ngx_http_amonitor_router_panel_message(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len)
{
    int                       rc;
    amon_envelope_t           env;
    ngx_http_amonitor_about_t about;

    if (opcode == AMON_WS_OP_BINARY) {
        rc = amon_envelope_decode_pb(&env, data, len, &w->allocator);

    } else {
        rc = amon_envelope_decode_json(&env, data, len);
    }

    /* what a reply answers: the ids that could be read */
    about.msg_id.data = (u_char *) env.msg_id.data;
    about.msg_id.len = env.msg_id.len;
    about.trace_id.data = (u_char *) env.trace_id.data;
    about.trace_id.len = env.trace_id.len;
    about.target_id.data = (u_char *) env.target_id.data;
    about.target_id.len = env.target_id.len;
    about.binary = wc->encoding ? (wc->encoding == AMON_WS_OP_BINARY)
                                : (opcode == AMON_WS_OP_BINARY);
    about.action = (rc == AMON_OK && env.type == AMON_MSG_ACTION);

    if (rc != AMON_OK) {
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);

        ngx_log_error(NGX_LOG_INFO, wc->connection->log, 0,
            "amonitor: invalid message from panel #%ui: %s", wc->id,
            amon_strerror(rc));

        if (rc == AMON_ENO_MSG_ID) {
            about.msg_id.len = 0;
        }

        ngx_http_amonitor_reply_error(
            w, wc, &about, "INVALID_MESSAGE", amon_strerror(rc), 1);
        goto done;
    }

    switch (env.type) {

    case AMON_MSG_ACTION: break;

    case AMON_MSG_ACTION_STATUS:
        ngx_http_amonitor_query_start(w, wc, &env, &about);
        goto done;

    case AMON_MSG_UNKNOWN:
        ngx_http_amonitor_reply_error(
            w, wc, &about, "INVALID_MESSAGE", "unknown message type", 1);
        goto done;

    default:
        /* known types that panels have no business sending: ignored */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
            "amonitor panel message of type \"%*s\" ignored", env.type_name.len,
            env.type_name.data);
        goto done;
    }

    if (env.target_id.len == 0 && env.target_url.len == 0) {
        ngx_http_amonitor_reply_error(w, wc, &about, "INVALID_MESSAGE",
            "an action needs target_id or payload.target_url", 1);
        goto done;
    }

    if (env.action.len == 0) {
        ngx_http_amonitor_reply_error(w, wc, &about, "INVALID_MESSAGE",
            "an action needs payload.action", 1);
        goto done;
    }

    ngx_http_amonitor_action_start(w, wc, &env, opcode, data, len);

done:

    amon_envelope_release(&env);
}


void
ngx_http_amonitor_router_panel_gone(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_action_panel_gone(w, wc);
    ngx_http_amonitor_query_panel_gone(w, wc);
}


void
ngx_http_amonitor_router_upstream_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    int                         rc;
    ngx_str_t                   out, hb;
    amon_envelope_t             env;
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_live_t    live;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (opcode == AMON_WS_OP_BINARY) {
        rc = amon_envelope_decode_pb(&env, data, len, &w->allocator);

    } else {
        rc = amon_envelope_decode_json(&env, data, len);
    }

    if (rc != AMON_OK) {
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);
        ngx_log_error(NGX_LOG_ERR, &u->log, 0,
            "amonitor: invalid message from the SDK dropped: %s",
            amon_strerror(rc));
        amon_envelope_release(&env);
        return;
    }

    switch (env.type) {

    case AMON_MSG_ACTION_ACK:
        ngx_http_amonitor_action_ack(u, &env, opcode, data, len);
        break;

    case AMON_MSG_REGISTER: ngx_http_amonitor_router_register(u, &env); break;

    case AMON_MSG_ACTION:
        ngx_log_error(
            NGX_LOG_INFO, &u->log, 0, "amonitor: action from an SDK ignored");
        break;

    case AMON_MSG_ERROR:
    case AMON_MSG_TARGET_STATUS:
    case AMON_MSG_ACTION_STATUS:
        /* only the agent speaks for itself: an SDK cannot forge these */
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);
        ngx_log_error(NGX_LOG_INFO, &u->log, 0,
            "amonitor: \"%s\" from an SDK dropped: only the agent sends it",
            amon_msg_type_name(env.type));
        break;

    default:
        /*
         * heartbeat, event and types we do not know: to every panel, bytes
         * unchanged unless the SDK does not name itself as the agent does
         */
        if (ngx_http_amonitor_reply_stamp(
                w, u, &env, opcode, data, len, 0, &out)
            != NGX_OK) {
            break;
        }

        msg = ngx_http_amonitor_msg_frame(
            &w->frames, opcode, out.data, out.len, 0);
        if (msg == NULL) {
            break;
        }

        if (env.type != AMON_MSG_HEARTBEAT) {
            ngx_http_amonitor_router_broadcast(
                w, msg, opcode, u, &env, NULL, 0, NULL);
            break;
        }

        /* the last heartbeat, for panels that connect later */
        hb.data = (u_char *) env.msg_id.data;
        hb.len = env.msg_id.len;

        ngx_http_amonitor_store_heartbeat(w->store,
            ngx_http_amonitor_router_tstate(u), &hb, opcode, out.data, out.len);

        live.target = &u->id;
        live.target_hash = 0;
        live.heartbeat = 1;
        live.value = ngx_crc32_short(hb.data, hb.len);

        ngx_http_amonitor_router_broadcast(
            w, msg, opcode, u, &env, NULL, 0, &live);
    }

    amon_envelope_release(&env);
}


/* an SDK names itself and its URL: the other workers dial it too */
static void
ngx_http_amonitor_router_register(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env)
{
    u_char                        norm[AMON_MAX_URL_LEN + 16];
    u_char                        ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t                     id, n, e;
    amon_ws_url_t                 wu;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *known;

    w = u->worker;

    id.data =
        (u_char *) (env->payload_target_id.len ? env->payload_target_id.data
                                               : env->target_id.data);
    id.len = env->payload_target_id.len ? env->payload_target_id.len
                                        : env->target_id.len;

    if (env->sdk_url.len == 0 || id.len == 0) {
        return;
    }

    n.data = norm;

    if (ngx_http_amonitor_target_url(
            (u_char *) env->sdk_url.data, env->sdk_url.len, &wu, &n)
        != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &u->log, 0,
            "amonitor: register with an invalid sdk_url ignored");
        return;
    }

    known = ngx_http_amonitor_target_find(w, &id);
    if (known == NULL) {
        known = ngx_http_amonitor_target_find_url(w, &n);
    }

    if (known && (!known->dynamic || known->registered || known == u)) {
        /* configured and registered targets keep their id and URL */
        if (known == u && known->dynamic && !known->registered
            && known->id.len == id.len
            && ngx_strncmp(known->id.data, id.data, id.len) == 0
            && w->store->learn(
                   w->store, &id, &known->norm, NGX_HTTP_AMONITOR_REGISTERED, 0)
                == NGX_OK) {
            known->registered = 1;
            known->dialer = 0;
        }

        return;
    }

    if (known) {
        /* the precedence: a register displaces a panel's dial */
        ngx_log_error(NGX_LOG_INFO, &u->log, 0,
            "amonitor: register of \"%V\" at \"%V\" displaces the "
            "target \"%V\" dialed on demand",
            ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)), &n,
            &known->id);
        w->drop(known, "displaced by a register");
    }

    switch (ngx_http_amonitor_target_learn(
        w, &id, &wu, &n, NGX_HTTP_AMONITOR_REGISTERED, 0, &known)) {

    case NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" at \"%V\" ignored: "
            "not allowed by amonitor_allow_url",
            ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)), &n);
        break;

    case NGX_HTTP_AMONITOR_LEARN_FULL:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" ignored: too many learned "
            "targets",
            ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)));
        break;

    case NGX_HTTP_AMONITOR_LEARN_BAD_ID:
        ngx_log_error(NGX_LOG_INFO, &u->log, 0,
            "amonitor: register of \"%V\" ignored: control characters in "
            "its target_id",
            ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)));
        break;

    case NGX_HTTP_AMONITOR_LEARN_TAKEN:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" at \"%V\" ignored: another "
            "SDK registered that id",
            ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)), &n);
        break;

    default: break;
    }
}


/*
 * Fan a shared frame out to every panel; droppable for slow panels.  A
 * panel that chose the other encoding gets the message converted, once
 * for all such panels: from "env" (an SDK's, with "u"), else from the
 * JSON text "data" (the agent's own).  A frame about a target ("live") is
 * not sent to a panel whose snapshot told it the same already.
 */
static void
ngx_http_amonitor_router_broadcast(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t opcode,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_http_amonitor_live_t *live)
{
    ngx_uint_t                want, tried;
    ngx_queue_t              *q;
    ngx_http_amonitor_msg_t  *m, *alt;
    ngx_http_amonitor_conn_t *wc;

    alt = NULL;
    tried = 0;
    msg->refs++;

    for (q = ngx_queue_head(&w->panels); q != ngx_queue_sentinel(&w->panels);
         q = ngx_queue_next(q)) {
        wc = ngx_queue_data(q, ngx_http_amonitor_conn_t, queue);

        if (wc->close_sent) {
            continue;
        }

        if (wc->unseen && live && ngx_http_amonitor_router_seen(wc, live)) {
            continue;
        }

        want = wc->encoding ? wc->encoding : opcode;
        m = msg;

        if (want != opcode) {
            if (!tried) {
                tried = 1;
                alt = ngx_http_amonitor_router_convert(
                    w, want, u, env, data, len);
            }

            m = alt;
            if (m == NULL) {
                continue;
            }
        }

        if (ngx_http_amonitor_conn_send(wc, m, 0) == NGX_OK) {
            continue;
        }

        if (wc->dropped++ % 1000 == 0) {
            ngx_log_error(NGX_LOG_WARN, wc->connection->log, 0,
                "amonitor: panel #%ui is slow: its send queue "
                "is full, %ui heartbeats/events dropped for it",
                wc->id, wc->dropped);
        }

        (void) ngx_atomic_fetch_add(&w->counters->dropped, 1);
    }

    (void) ngx_atomic_fetch_add(&w->counters->forwarded, 1);

    ngx_http_amonitor_msg_release(&w->frames, msg);

    if (alt) {
        ngx_http_amonitor_msg_release(&w->frames, alt);
    }
}


/* the message as a frame in the other encoding ("want"), or NULL */
static ngx_http_amonitor_msg_t *
ngx_http_amonitor_router_convert(ngx_http_amonitor_worker_t *w, ngx_uint_t want,
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
ngx_http_amonitor_router_seen(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_live_t *live)
{
    ngx_uint_t                i;
    ngx_http_amonitor_seen_t *seen;

    if (live->target_hash == 0) {
        live->target_hash =
            ngx_crc32_short(live->target->data, live->target->len) | 1;
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


void
ngx_http_amonitor_router_upstream_open(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_store_target_state(
        u->worker->store, ngx_http_amonitor_router_tstate(u), 1, 0, NULL);
    ngx_http_amonitor_router_target_status(u, "up", NULL);
    ngx_http_amonitor_action_upstream_open(u);
}


void
ngx_http_amonitor_router_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected)
{
    const char *reason;

    reason = connected ? "connection lost" : "cannot connect";

    ngx_http_amonitor_store_target_state(u->worker->store,
        ngx_http_amonitor_router_tstate(u), 0, connected, reason);

    ngx_http_amonitor_action_upstream_down(u, connected);
    ngx_http_amonitor_target_failed(u);

    if (connected) {
        ngx_http_amonitor_router_target_status(u, "down", reason);
    }
}


/* the target's record in the zone, looked up once per upstream */
static ngx_http_amonitor_tstate_t *
ngx_http_amonitor_router_tstate(ngx_http_amonitor_upstream_t *u)
{
    if (u->tstate == NULL) {
        u->tstate = ngx_http_amonitor_store_target(
            u->worker->store, &u->id, &u->norm, u->dynamic);
    }

    return u->tstate;
}


/* tell panels a target went up or down */
static void
ngx_http_amonitor_router_target_status(
    ngx_http_amonitor_upstream_t *u, const char *state, const char *reason)
{
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_live_t    live;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (ngx_queue_empty(&w->panels)) {
        return;
    }

    msg = ngx_http_amonitor_reply_target_status(w, u, state, reason);
    if (msg == NULL) {
        return;
    }

    live.target = &u->id;
    live.target_hash = 0;
    live.heartbeat = 0;
    live.value = (state[0] == 'u');

    /* its JSON text is still in the scratch buffer */
    ngx_http_amonitor_router_broadcast(w, msg, AMON_WS_OP_TEXT, NULL, NULL,
        w->scratch.data, w->scratch.len, &live);
}


/*
 * A new panel first learns what the zone knows, whichever worker learned
 * it: the target_status of every target this worker serves (or learned at
 * run time), then the last heartbeat of each.  Queued before any live
 * frame, so nothing is reordered; what it said is remembered so that the
 * same heartbeat or state arriving live is not sent twice.
 */
void
ngx_http_amonitor_router_panel_snapshot(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_conn_t *wc)
{
    ngx_uint_t                 i;
    ngx_http_amonitor_tsnap_t *snap;

    if (w->store == NULL || w->store->zone == NULL) {
        return;
    }

    wc->seen = ngx_array_create(
        wc->connection->pool, 4, sizeof(ngx_http_amonitor_seen_t));
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

        if (ngx_http_amonitor_router_snapshot_one(w, wc, snap) != NGX_OK) {
            break;
        }
    }

    ngx_free(snap);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
        "amonitor panel #%ui snapshot: %ui targets", wc->id, wc->seen->nelts);
}


static ngx_int_t
ngx_http_amonitor_router_snapshot_one(ngx_http_amonitor_worker_t *w,
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

    seen->target = ngx_crc32_short(snap->id.data, snap->id.len) | 1;
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
