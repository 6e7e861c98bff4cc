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
#include "ngx_http_amonitor_action.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_subscribe.h"
#include "ngx_http_amonitor_fanout.h"


static void ngx_http_amonitor_router_sdk(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len, ngx_uint_t remote);


static void ngx_http_amonitor_router_register(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env);
static void ngx_http_amonitor_router_register_kept(
    ngx_http_amonitor_upstream_t *u, ngx_http_amonitor_upstream_t *known,
    ngx_str_t *id, ngx_str_t *n);
static void ngx_http_amonitor_router_register_failed(
    ngx_http_amonitor_upstream_t *u, ngx_http_amonitor_learn_e rc,
    ngx_str_t *id, ngx_str_t *n);
static void ngx_http_amonitor_router_remote_state(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t up);
static void ngx_http_amonitor_router_event(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len,
    ngx_uint_t remote);
static void ngx_http_amonitor_router_remote_status(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t opcode, u_char *data,
    size_t len);
static void ngx_http_amonitor_router_target_status(
    ngx_http_amonitor_upstream_t *u, const char *state, const char *reason,
    ngx_uint_t publish);
static ngx_http_amonitor_tstate_t *ngx_http_amonitor_router_tstate(
    ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_router_invalid(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_about_t *about);


void
ngx_http_amonitor_router_panel_message(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len)
{
    int                       rc;
    amon_envelope_t           env;
    ngx_http_amonitor_about_t about;

    rc = ngx_http_amonitor_conn_decode(
        wc, &env, opcode, data, len, &w->allocator);

    /* what a reply answers: the ids that could be read */
    about.msg_id.data = (u_char *) env.msg_id.data;
    about.msg_id.len = env.msg_id.len;
    about.trace_id.data = (u_char *) env.trace_id.data;
    about.trace_id.len = env.trace_id.len;
    about.target_id.data = (u_char *) env.target_id.data;
    about.target_id.len = env.target_id.len;
    about.binary = wc->encoding ? (wc->encoding == AMON_WS_OP_BINARY)
                                : (opcode == AMON_WS_OP_BINARY);
    /* an action refused for its envelope is answered as an ack too */
    about.action = (env.type == AMON_MSG_ACTION && env.msg_id.len
        && rc != AMON_ENO_MSG_ID);

    if (rc == AMON_EUTF8) {
        /* a fault of the connection: it closes with 1007 (conn_decode) */
        goto done;
    }

    if (rc != AMON_OK) {
        ngx_http_amonitor_router_invalid(w, &about);

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
        /* an action sent before this query is claimed before it is asked */
        ngx_http_amonitor_action_claims_run(w);
        ngx_http_amonitor_query_start(w, wc, &env, &about);
        goto done;

    case AMON_MSG_SUBSCRIBE:
        if (ngx_http_amonitor_subscribe_message(w, wc, &env, &about) == NGX_OK
            && ((ngx_http_amonitor_sub_t *) wc->sub)->snapshot) {
            /*
             * what is known of the new set, as a new panel gets it; it is
             * paid from the panel's budget, as its patterns are
             */
            ngx_http_amonitor_subscribe_charge(
                wc, ngx_http_amonitor_fanout_snapshot(w, wc));
        }

        goto done;

    case AMON_MSG_UNKNOWN:
        ngx_http_amonitor_router_invalid(w, &about);
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
        ngx_http_amonitor_router_invalid(w, &about);
        ngx_http_amonitor_reply_error(w, wc, &about, "INVALID_MESSAGE",
            "an action needs target_id or payload.target_url", 1);
        goto done;
    }

    if (env.action.len == 0) {
        ngx_http_amonitor_router_invalid(w, &about);
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
    ngx_http_amonitor_subscribe_gone(w, wc);
    ngx_http_amonitor_fanout_panel_gone(wc);
}


void
ngx_http_amonitor_router_upstream_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_http_amonitor_router_sdk(u, opcode, data, len, 0);
}


/*
 * amonitor_cluster: what another worker's connection to "u" sent (events,
 * target_status, acks of this worker's actions), through the same paths,
 * never published again.
 */
void
ngx_http_amonitor_router_remote_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_http_amonitor_router_sdk(u, opcode, data, len, 1);
}


/*
 * amonitor_cluster: this worker's bus was lost, and no worker of the
 * cluster said it holds "u" since: its state here was "up", and the
 * "down" may have been lost with the bus.  This worker's panels are told.
 */
void
ngx_http_amonitor_router_remote_unconfirmed(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_router_remote_state(u, 0);

    u->remote_told_down = 1;
    ngx_http_amonitor_router_target_status(u, "down",
        "no agent holds the connection (not confirmed after the cluster "
        "bus was lost)",
        0);
}


/*
 * amonitor_cluster: another worker says it holds "u" open (the answer to
 * this worker's question after a subscribe): up here, and this worker's
 * panels are told so if what they were told last was not "up".
 */
void
ngx_http_amonitor_router_remote_held(ngx_http_amonitor_upstream_t *u)
{
    ngx_uint_t tell;

    tell = !u->remote_up || u->remote_told_down;

    ngx_http_amonitor_router_remote_state(u, 1);
    u->remote_told_down = 0;

    if (tell) {
        ngx_http_amonitor_router_target_status(u, "up", NULL, 0);
    }
}


/*
 * amonitor_cluster: a worker that has not heard from the owner of "u"
 * (just started: a respawn, a reload) takes what the other workers of
 * this instance count in the zone, or what a worker that died counted
 * (no worker spoke of it since): up there, up here.  It hears what they
 * hear from now on, and the dead owner's lease goes to a next owner who
 * says up or down, so this is not to be confirmed as after a lost bus.
 * An action for it waits for that owner rather than being refused.
 */
ngx_uint_t
ngx_http_amonitor_router_remote_seed(ngx_http_amonitor_upstream_t *u)
{
    ngx_uint_t up;

    if (u->remote_up || u->stopped || u->state == NGX_HTTP_AMONITOR_UP_OPEN
        || u->state == NGX_HTTP_AMONITOR_UP_CONNECTING
        || u->state == NGX_HTTP_AMONITOR_UP_HANDSHAKE) {
        return 0;
    }

    if (!ngx_http_amonitor_store_target_known(u->worker->store, &u->id, &up)
        || !up) {
        return 0;
    }

    ngx_http_amonitor_router_remote_state(u, 1);

    /* a dead worker's: the zone said down meanwhile; the next word tells */
    u->remote_told_down |= (up == 2);

    return 1;
}


/* an invalid message of a panel; an action refused so ends in an error */
static void
ngx_http_amonitor_router_invalid(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_about_t *about)
{
    (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);

    if (about->action) {
        (void) ngx_atomic_fetch_add(&w->counters->errors, 1);
    }
}


static void
ngx_http_amonitor_router_sdk(ngx_http_amonitor_upstream_t *u, ngx_uint_t opcode,
    u_char *data, size_t len, ngx_uint_t remote)
{
    int                         rc;
    amon_envelope_t             env;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    rc = ngx_http_amonitor_conn_decode(
        remote ? NULL : &u->wc, &env, opcode, data, len, &w->allocator);

    /* invalid UTF-8: a fault of the connection, closed with 1007 */
    if (rc != AMON_OK && rc != AMON_EUTF8) {
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);

        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0,
                "amonitor: invalid message from the SDK dropped: %s",
                amon_strerror(rc));
        }
    }

    if (rc != AMON_OK) {
        amon_envelope_release(&env);
        return;
    }

    /*
     * "source" and an ack's "final" are the agent's to set: an SDK's own
     * would be forwarded as its claim (another target's name) or, beside
     * the agent's, be the copy a panel's parser keeps.  Another instance
     * of the cluster forwards messages it has set them in.
     */
    if (!remote
        && (env.has_source
            || (env.type == AMON_MSG_ACTION_ACK && env.final_member))) {
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);

        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0,
                "amonitor: invalid message from the SDK dropped: it has a "
                "\"%s\" member, which only the agent sets",
                env.has_source ? "source" : "final");
        }

        amon_envelope_release(&env);
        return;
    }

    switch (env.type) {

    case AMON_MSG_ACTION_ACK:
        ngx_http_amonitor_action_ack(u, &env, opcode, data, len);
        break;

    case AMON_MSG_REGISTER:
        if (!remote) {
            ngx_http_amonitor_router_register(u, &env);
        }
        break;

    case AMON_MSG_ACTION:
    case AMON_MSG_SUBSCRIBE:
        /* what panels send: an SDK has nothing to ask of the agent */
        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_INFO, &u->log, 0,
                "amonitor: %s from an SDK ignored",
                amon_msg_type_name(env.type));
        }
        break;

    case AMON_MSG_TARGET_STATUS:
        if (remote) {
            ngx_http_amonitor_router_remote_status(u, opcode, data, len);
            break;
        }

        /* fall through */

    case AMON_MSG_ERROR:
    case AMON_MSG_ACTION_STATUS:
    case AMON_MSG_SUBSCRIBED:
        /* only the agent speaks for itself: an SDK cannot forge these */
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);

        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_INFO, &u->log, 0,
                "amonitor: \"%s\" from an SDK dropped: only the agent sends "
                "it",
                amon_msg_type_name(env.type));
        }

        break;

    default: ngx_http_amonitor_router_event(u, &env, opcode, data, len, remote);
    }

    amon_envelope_release(&env);
}


/*
 * Heartbeat, event and types we do not know: to every panel, bytes
 * unchanged unless the SDK does not name itself as the agent does.
 */
static void
ngx_http_amonitor_router_event(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len,
    ngx_uint_t remote)
{
    ngx_str_t                   out;
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_live_t    live;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (remote) {
        /* stamped by the owner already */
        out.data = data;
        out.len = len;

        if (u->state != NGX_HTTP_AMONITOR_UP_OPEN) {
            /*
             * its owner has it: this worker's panels are told so if they
             * were told down, or nothing yet (this worker has just
             * started: an event may come before the owner's answer to
             * its question, which then tells nothing)
             */
            ngx_http_amonitor_router_remote_held(u);

        } else {
            /* two connections for a moment (a lease taken over) */
            ngx_http_amonitor_router_remote_state(u, 1);
        }

    } else if (ngx_http_amonitor_reply_stamp(
                   w, u, env, opcode, data, len, 0, &out)
        != NGX_OK) {
        return;

    } else {
        /* amonitor_cluster: for the panels of every other worker */
        ngx_http_amonitor_cluster_event(u, opcode, out.data, out.len);
    }

    msg = ngx_http_amonitor_msg_frame(&w->frames, opcode, out.data, out.len, 0);
    if (msg == NULL) {
        return;
    }

    if (env->type != AMON_MSG_HEARTBEAT) {
        ngx_http_amonitor_fanout_broadcast(
            w, msg, opcode, u, env, NULL, 0, NULL);
        return;
    }

    /* the last heartbeat, for panels that connect later */
    live.value = ngx_http_amonitor_store_heartbeat_hash(
        (u_char *) env->msg_id.data, env->msg_id.len);

    ngx_http_amonitor_store_heartbeat(w->store,
        ngx_http_amonitor_router_tstate(u), live.value, opcode, out.data,
        out.len);

    live.target = &u->id;
    live.target_hash = 0;
    live.heartbeat = 1;
    u->hb_sent = live.value;

    ngx_http_amonitor_fanout_broadcast(w, msg, opcode, u, env, NULL, 0, &live);
}


/* amonitor_cluster: the owner's target_status, to this worker's panels */
static void
ngx_http_amonitor_router_remote_status(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_uint_t                  up;
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_live_t    live;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;
    u->remote_told_down = 0;

    up = ngx_strlcasestrn(data, data + len, (u_char *) "\"state\":\"up\"",
             sizeof("\"state\":\"up\"") - 2)
        != NULL;

    ngx_http_amonitor_router_remote_state(u, up);

    /*
     * A panel's snapshot filter sees it as it sees this worker's own: a
     * "down" from elsewhere uses up what the snapshot said, so that this
     * worker's "up" after it is not taken for the snapshot's repeat.
     */
    live.target = &u->id;
    live.target_hash = 0;
    live.heartbeat = 0;
    live.value = up;

    msg = ngx_http_amonitor_msg_frame(&w->frames, opcode, data, len, 0);
    if (msg) {
        ngx_http_amonitor_fanout_broadcast(
            w, msg, opcode, u, NULL, data, len, &live);
    }
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
    ngx_http_amonitor_learn_e     rc;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *known;

    w = u->worker;

    id.data =
        (u_char *) (env->payload_target_id.len ? env->payload_target_id.data
                                               : env->target_id.data);
    id.len = env->payload_target_id.len ? env->payload_target_id.len
                                        : env->target_id.len;

    if (env->sdk_url.len == 0 || id.len == 0) {
        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_INFO, &u->log, 0,
                "amonitor: register ignored: it has no %s",
                env->sdk_url.len ? "target_id" : "payload.sdk_url");
        }

        return;
    }

    n.data = norm;

    if (ngx_http_amonitor_target_url(
            (u_char *) env->sdk_url.data, env->sdk_url.len, &wu, &n)
        != NGX_OK) {
        if (ngx_http_amonitor_upstream_say(u)) {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0,
                "amonitor: register with an invalid sdk_url ignored");
        }

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
            && w->store->learn(w->store, &id, &known->norm,
                   NGX_HTTP_AMONITOR_REGISTERED, 0, w->amcf->learned_limit)
                == NGX_OK) {
            known->registered = 1;

            if (known->dialer) {
                ngx_queue_remove(&known->dialed);
                known->dialer = 0;
            }

            return;
        }

        ngx_http_amonitor_router_register_kept(u, known, &id, &n);
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

    rc = ngx_http_amonitor_target_learn(
        w, &id, &wu, &n, NGX_HTTP_AMONITOR_REGISTERED, 0, &known);

    if (rc == NGX_HTTP_AMONITOR_LEARN_OK) {
        /* amonitor_cluster: a shared route */
        ngx_http_amonitor_cluster_route(w, &known->id, &n, "register");
        return;
    }

    ngx_http_amonitor_router_register_failed(u, rc, &id, &n);
}


/*
 * A register naming a target that keeps its id and URL (configured, or
 * registered by an SDK): nothing changes, and the log says why, unless
 * it is that target's own repeat of its register.
 */
static void
ngx_http_amonitor_router_register_kept(ngx_http_amonitor_upstream_t *u,
    ngx_http_amonitor_upstream_t *known, ngx_str_t *id, ngx_str_t *n)
{
    u_char     ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t  e;
    ngx_uint_t same_id;

    same_id = (known->id.len == id->len
        && ngx_strncmp(known->id.data, id->data, id->len) == 0);

    if ((known == u && same_id) || !ngx_http_amonitor_upstream_say(u)) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, &u->log, 0,
        "amonitor: register of \"%V\" at \"%V\" ignored: the %s target "
        "\"%V\" has that %s and keeps its id",
        ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)), n,
        known->dynamic ? "registered" : "configured", &known->id,
        same_id ? "id" : "URL");
}


/* why a register was not followed, at warn (info for a bad id) */
static void
ngx_http_amonitor_router_register_failed(ngx_http_amonitor_upstream_t *u,
    ngx_http_amonitor_learn_e rc, ngx_str_t *id, ngx_str_t *n)
{
    u_char    ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t e;

    if (rc == NGX_HTTP_AMONITOR_LEARN_NO_ROOM
        || !ngx_http_amonitor_upstream_say(u)) {
        return;
    }

    switch (rc) {

    case NGX_HTTP_AMONITOR_LEARN_NOT_ALLOWED:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" at \"%V\" ignored: "
            "not allowed by amonitor_allow_url",
            ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)), n);
        break;

    case NGX_HTTP_AMONITOR_LEARN_FULL:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" ignored: too many learned "
            "targets (amonitor_learned_limit)",
            ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)));
        break;

    case NGX_HTTP_AMONITOR_LEARN_BAD_ID:
        ngx_log_error(NGX_LOG_INFO, &u->log, 0,
            "amonitor: register of \"%V\" ignored: control characters in "
            "its target_id",
            ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)));
        break;

    case NGX_HTTP_AMONITOR_LEARN_TAKEN:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" at \"%V\" ignored: another "
            "SDK registered that id",
            ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)), n);
        break;

    case NGX_HTTP_AMONITOR_LEARN_TOO_LONG:
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" ignored: its sdk_url is longer "
            "than %d bytes",
            ngx_http_amonitor_log_str(id, &e, ebuf, sizeof(ebuf)),
            NGX_HTTP_AMONITOR_REG_URL_MAX);
        break;

    default:
        /* NO_ROOM among them: the registry logged it */
        break;
    }
}


void
ngx_http_amonitor_router_upstream_open(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_store_target_state(
        u->worker->store, ngx_http_amonitor_router_tstate(u), 1, 0, NULL);

    /* amonitor_cluster: this worker's own connection counts from now */
    ngx_http_amonitor_router_remote_state(u, 0);
    u->remote_told_down = 0;

    ngx_http_amonitor_router_target_status(u, "up", NULL, 1);
    ngx_http_amonitor_action_upstream_open(u);
    ngx_http_amonitor_cluster_upstream_open(u);
}


void
ngx_http_amonitor_router_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected)
{
    ngx_uint_t  quiet;
    const char *reason;

    reason = connected ? "connection lost" : "cannot connect";

    ngx_http_amonitor_store_target_state(u->worker->store,
        ngx_http_amonitor_router_tstate(u), 0, connected, reason);

    ngx_http_amonitor_action_upstream_down(u, connected);
    ngx_http_amonitor_target_failed(u);
    ngx_http_amonitor_cluster_upstream_down(u, connected);

    /*
     * amonitor_cluster: a connection closed because another worker took
     * the lease says nothing: that worker's "up" may have gone out
     * already, and a "down" after it would leave every panel wrong.  Nor
     * does one this worker closes as it exits (a reload, a stop): it
     * releases the lease and another worker dials at once; one that
     * cannot tells the cluster "down", as after a crash.
     */
    quiet = u->handed_over
        || (u->worker->cluster && (ngx_exiting || ngx_quit || ngx_terminate));

    if (connected && !quiet) {
        ngx_http_amonitor_router_target_status(u, "down", reason, 1);

    } else if (!connected && !quiet && !u->stopped && u->remote_up) {
        /*
         * amonitor_cluster: this worker took the lease over from an owner
         * that said "up" and is gone without its "down" (killed): the
         * target cannot be reached, so the whole cluster is told.  Not
         * when this worker only stops (it exits, forgets the target):
         * the owner still has it.
         */
        ngx_http_amonitor_router_remote_state(u, 0);
        ngx_http_amonitor_router_target_status(u, "down", reason, 1);
    }

    u->handed_over = 0;
}


/*
 * amonitor_cluster: the target is up or down at its owner (another
 * worker).  Each worker counts it once in the zone's state, as it counts
 * a connection of its own, so that snapshots and the status page of every
 * instance say what the owner sees.
 */
static void
ngx_http_amonitor_router_remote_state(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t up)
{
    /* its owner spoke */
    u->remote_unsure = 0;

    if (up == u->remote_up) {
        return;
    }

    u->remote_up = up;

    ngx_http_amonitor_store_target_state(u->worker->store,
        ngx_http_amonitor_router_tstate(u), up, !up,
        up ? NULL : "connection lost");
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


/* tell panels a target went up or down (and other workers': "publish") */
static void
ngx_http_amonitor_router_target_status(ngx_http_amonitor_upstream_t *u,
    const char *state, const char *reason, ngx_uint_t publish)
{
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_live_t    live;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (ngx_queue_empty(&w->panels) && (w->cluster == NULL || !publish)) {
        return;
    }

    msg = ngx_http_amonitor_reply_target_status(w, u, state, reason);
    if (msg == NULL) {
        return;
    }

    if (publish) {
        /* amonitor_cluster: for the panels of every other worker */
        ngx_http_amonitor_cluster_event(
            u, AMON_WS_OP_TEXT, w->scratch.data, w->scratch.len);
    }

    live.target = &u->id;
    live.target_hash = 0;
    live.heartbeat = 0;
    live.value = (state[0] == 'u');

    /* its JSON text is still in the scratch buffer */
    ngx_http_amonitor_fanout_broadcast(w, msg, AMON_WS_OP_TEXT, u, NULL,
        w->scratch.data, w->scratch.len, &live);
}
