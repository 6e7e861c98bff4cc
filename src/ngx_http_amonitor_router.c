/*
 * Copyright (C) AMonitor authors
 *
 * The router: panel actions to the SDK they name (after the dedupe claim),
 * SDK acks back to the panel that asked, heartbeats and events to every
 * panel with their bytes unchanged, and exactly one answer per action.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_module.h"
#include "ngx_http_amonitor_store.h"


/* what router_fail does to the claim */
#define NGX_HTTP_AMONITOR_KEEP    0 /* record it as failed */
#define NGX_HTTP_AMONITOR_RELEASE 1 /* never reached the SDK: forget */
#define NGX_HTTP_AMONITOR_FORGET  2 /* the store failed: leave it */

#define NGX_HTTP_AMONITOR_LATE_MAX 600000


static void ngx_http_amonitor_router_claimed(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result);
static void ngx_http_amonitor_router_route(ngx_http_amonitor_pending_t *pa);
static void ngx_http_amonitor_router_forward(
    ngx_http_amonitor_pending_t *pa, ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_router_ack_timeout(ngx_event_t *ev);
static void ngx_http_amonitor_router_ack(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len);
static void ngx_http_amonitor_router_register(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env);
static void ngx_http_amonitor_router_error(ngx_http_amonitor_panel_t *p,
    ngx_uint_t binary, ngx_str_t *msg_id, ngx_str_t *target_id,
    const char *code, const char *message);
static void ngx_http_amonitor_router_fail(ngx_http_amonitor_pending_t *pa,
    const char *code, const char *message, ngx_uint_t release);
static void ngx_http_amonitor_router_free(ngx_http_amonitor_pending_t *pa);
static void ngx_http_amonitor_router_target_status(
    ngx_http_amonitor_upstream_t *u, const char *state);
static int64_t ngx_http_amonitor_router_now(void);
static void    ngx_http_amonitor_router_uuid(u_char *out);


#define ngx_http_amonitor_str(s) \
    { \
        (const unsigned char *) (s)->data, (s)->len \
    }


void
ngx_http_amonitor_router_panel_message(
    ngx_http_amonitor_panel_t *p, ngx_uint_t opcode, u_char *data, size_t len)
{
    int                          rc;
    u_char                      *d, buf[NGX_HTTP_AMONITOR_RESULT_MAX];
    ngx_str_t                    msg_id, target_id, result;
    ngx_uint_t                   binary;
    amon_envelope_t              env;
    ngx_http_amonitor_claim_e    state;
    ngx_http_amonitor_pending_t *pa;
    ngx_http_amonitor_worker_t  *w;

    w = p->wc.worker;
    binary = (opcode == AMON_WS_OP_BINARY);

    if (binary) {
        rc = amon_envelope_decode_pb(&env, data, len, &w->allocator);

    } else {
        rc = amon_envelope_decode_json(&env, data, len);
    }

    msg_id.data = (u_char *) env.msg_id.data;
    msg_id.len = env.msg_id.len;

    if (rc != AMON_OK) {
        (void) ngx_atomic_fetch_add(&w->counters->invalid, 1);

        ngx_log_error(NGX_LOG_INFO, p->wc.connection->log, 0,
            "amonitor: invalid message from panel #%ui: %s", p->id,
            amon_strerror(rc));

        if (rc != AMON_ENO_MSG_ID && msg_id.len == 0) {
            ngx_str_null(&msg_id);
        }

        ngx_http_amonitor_router_error(p, binary,
            (rc == AMON_ENO_MSG_ID) ? NULL : &msg_id, NULL, "INVALID_MESSAGE",
            amon_strerror(rc));
        goto done;
    }

    if (env.type != AMON_MSG_ACTION) {
        /* only actions go to SDKs; other panel messages are ignored */
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, p->wc.connection->log, 0,
            "amonitor panel message of type \"%*s\" ignored", env.type_name.len,
            env.type_name.data);
        goto done;
    }

    target_id.data = (u_char *) env.target_id.data;
    target_id.len = env.target_id.len;

    if (env.target_id.len == 0 && env.target_url.len == 0) {
        ngx_http_amonitor_router_error(p, binary, &msg_id, NULL,
            "INVALID_MESSAGE",
            "an action needs target_id or "
            "payload.target_url");
        goto done;
    }

    if (env.action.len == 0) {
        ngx_http_amonitor_router_error(p, binary, &msg_id, &target_id,
            "INVALID_MESSAGE", "an action needs payload.action");
        goto done;
    }

    if (p->pending >= w->amcf->queue) {
        /* bounded memory: a panel cannot pile up unanswered actions */
        ngx_http_amonitor_router_error(p, binary, &msg_id, &target_id,
            "RATE_LIMITED",
            "too many actions of this panel are waiting for acks");
        goto done;
    }

    pa = ngx_alloc(sizeof(ngx_http_amonitor_pending_t) + env.msg_id.len
            + env.target_id.len + env.target_url.len,
        p->wc.connection->log);
    if (pa == NULL) {
        ngx_http_amonitor_router_error(
            p, binary, &msg_id, &target_id, "INTERNAL", "out of memory");
        goto done;
    }

    ngx_memzero(pa, sizeof(ngx_http_amonitor_pending_t));

    d = (u_char *) (pa + 1);

    pa->sn.str.data = d;
    pa->sn.str.len = env.msg_id.len;
    if (env.msg_id.len) {
        d = ngx_cpymem(d, env.msg_id.data, env.msg_id.len);
    }

    pa->target_id.data = d;
    pa->target_id.len = env.target_id.len;
    if (env.target_id.len) {
        d = ngx_cpymem(d, env.target_id.data, env.target_id.len);
    }

    pa->target_url.data = d;
    pa->target_url.len = env.target_url.len;
    if (env.target_url.len) {
        ngx_memcpy(d, env.target_url.data, env.target_url.len);
    }

    pa->sn.node.key = ngx_crc32_short(pa->sn.str.data, pa->sn.str.len);
    pa->panel = p;
    pa->binary = binary;
    pa->worker = w;

    /* the bytes go to the SDK unchanged, in a frame masked as a client's */
    pa->msg = ngx_http_amonitor_msg_frame(w, opcode, data, len, 1);
    if (pa->msg == NULL) {
        ngx_free(pa);
        ngx_http_amonitor_router_error(
            p, binary, &msg_id, &target_id, "INTERNAL", "out of memory");
        goto done;
    }

    pa->msg->refs++;
    ngx_queue_insert_tail(&w->pending_all, &pa->all);
    p->pending++;

    /* an inline answer (shm) copies a stored result here */
    result.data = buf;
    result.len = 0;

    rc = w->store->claim(w->store, &pa->sn.str, &state, &result,
        ngx_http_amonitor_router_claimed, pa);

    if (rc == NGX_OK) {
        ngx_http_amonitor_router_claimed(pa, state, &result);

    } else if (rc == NGX_AGAIN) {
        /* the store answers later; it must do so in time */
        pa->claiming = 1;
        pa->timer.handler = ngx_http_amonitor_router_ack_timeout;
        pa->timer.data = pa;
        pa->timer.log = w->cycle->log;
        pa->timer.cancelable = 1;
        ngx_add_timer(&pa->timer, w->amcf->ack_timeout);

    } else {
        ngx_http_amonitor_router_fail(pa, "INTERNAL",
            "the dedupe store is not available", NGX_HTTP_AMONITOR_FORGET);
    }

done:

    amon_envelope_release(&env);
}


static void
ngx_http_amonitor_router_claimed(
    void *data, ngx_http_amonitor_claim_e state, ngx_str_t *result)
{
    ngx_http_amonitor_pending_t *pa = data;

    int                         rc;
    u_char                      id[36];
    amon_ack_out_t              ack;
    ngx_http_amonitor_worker_t *w;

    w = pa->worker;

    if (pa->claiming) {
        pa->claiming = 0;

        if (pa->timer.timer_set) {
            ngx_del_timer(&pa->timer);
        }
    }

    if (pa->abandoned) {
        /* answered already (store timeout, worker exit): never forwarded */
        if (state == NGX_HTTP_AMONITOR_CLAIM_NEW) {
            w->store->release(w->store, &pa->sn.str);
        }

        ngx_free(pa);
        return;
    }

    if (state == NGX_HTTP_AMONITOR_CLAIM_ERROR) {
        ngx_http_amonitor_router_fail(pa, "INTERNAL", "the dedupe store failed",
            NGX_HTTP_AMONITOR_FORGET);
        return;
    }

    if (state == NGX_HTTP_AMONITOR_CLAIM_NEW) {
        ngx_http_amonitor_router_route(pa);
        return;
    }

    /* a duplicate: never forwarded, answered by the agent itself */

    (void) ngx_atomic_fetch_add(&w->counters->duplicates, 1);

    if (pa->panel) {
        ngx_log_error(NGX_LOG_INFO, pa->panel->wc.connection->log, 0,
            "amonitor: duplicate action \"%V\" ignored", &pa->sn.str);

        ngx_http_amonitor_router_uuid(id);

        ngx_memzero(&ack, sizeof(amon_ack_out_t));
        ack.msg_id.data = id;
        ack.msg_id.len = 36;
        ack.target_id.data = pa->target_id.data;
        ack.target_id.len = pa->target_id.len;
        ack.timestamp = ngx_http_amonitor_router_now();
        ack.action_msg_id.data = pa->sn.str.data;
        ack.action_msg_id.len = pa->sn.str.len;
        ack.success = 1;
        ack.message.data = (const unsigned char *) "duplicate ignored";
        ack.message.len = sizeof("duplicate ignored") - 1;
        ack.duplicate = 1;

        if (state == NGX_HTTP_AMONITOR_CLAIM_DONE
            || state == NGX_HTTP_AMONITOR_CLAIM_FAILED) {
            ack.original.data = result->len ? result->data : NULL;
            ack.original.len = result->len;
        }

        w->scratch.len = 0;
        rc = amon_envelope_build_ack(
            &w->scratch, w->amcf->max_message, &w->allocator, &ack, pa->binary);
        if (rc == AMON_OK) {
            ngx_http_amonitor_panel_send_data(pa->panel,
                pa->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT,
                w->scratch.data, w->scratch.len);
        }
    }

    ngx_http_amonitor_router_free(pa);
}


static void
ngx_http_amonitor_router_route(ngx_http_amonitor_pending_t *pa)
{
    u_char                        norm[AMON_MAX_URL_LEN + 16];
    ngx_str_t                     n, url, id;
    amon_ws_url_t                 wu;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *u;

    w = pa->worker;
    u = NULL;

    /* a target_id that names a known target wins */
    if (pa->target_id.len) {
        u = ngx_http_amonitor_upstream_find(w, &pa->target_id);
    }

    if (u == NULL && pa->target_url.len) {

        if (amon_ws_url_parse(pa->target_url.data, pa->target_url.len, &wu)
            != AMON_OK) {
            ngx_http_amonitor_router_fail(pa, "INVALID_MESSAGE",
                "payload.target_url is not a "
                "ws:// URL",
                NGX_HTTP_AMONITOR_RELEASE);
            return;
        }

        n.data = norm;
        n.len = amon_ws_url_normalize(&wu, norm, sizeof(norm));

        u = ngx_http_amonitor_upstream_find_url(w, &n);

        if (u == NULL) {
            if (!ngx_http_amonitor_url_allowed(w->amcf, &wu)) {
                ngx_http_amonitor_router_fail(pa, "TARGET_URL_NOT_ALLOWED",
                    "payload.target_url is not "
                    "allowed by amonitor_allow_url",
                    NGX_HTTP_AMONITOR_RELEASE);
                return;
            }

            /* dial on demand, under the panel's name for it */
            id = pa->target_id.len ? pa->target_id : n;

            if (w->ndynamic >= NGX_HTTP_AMONITOR_MAX_DYNAMIC) {
                ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
                    "too many learned targets", NGX_HTTP_AMONITOR_RELEASE);
                return;
            }

            u = ngx_http_amonitor_upstream_add(w, &id, &wu);
            if (u == NULL) {
                ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
                    "cannot dial payload.target_url"
                    " (an IP address is needed)",
                    NGX_HTTP_AMONITOR_RELEASE);
                return;
            }

            url.data = n.data;
            url.len = n.len;

            if (ngx_http_amonitor_registry_add(w->amcf->shm_zone, &u->id, &url)
                != NGX_OK) {
                ngx_log_error(NGX_LOG_WARN, w->cycle->log, 0,
                    "amonitor: registry of learned targets is "
                    "full, \"%V\" stays local to this worker",
                    &u->id);
            }
        }
    }

    if (u == NULL) {
        ngx_http_amonitor_router_fail(
            pa, "UNKNOWN_TARGET", "no such target", NGX_HTTP_AMONITOR_RELEASE);
        return;
    }

    pa->upstream = u;

    if (u->state == NGX_HTTP_AMONITOR_UP_BACKOFF) {
        /* an action is a reason to try now rather than after the delay */
        ngx_http_amonitor_upstream_kick(u);
    }

    if (u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
        ngx_http_amonitor_router_forward(pa, u);
        return;
    }

    if (u->state == NGX_HTTP_AMONITOR_UP_CONNECTING
        || u->state == NGX_HTTP_AMONITOR_UP_HANDSHAKE) {
        /* a connection is in progress: wait for it, not longer */
        pa->waiting = 1;
        ngx_queue_insert_tail(&u->waiting, &pa->queue);

        pa->timer.handler = ngx_http_amonitor_router_ack_timeout;
        pa->timer.data = pa;
        pa->timer.log = w->cycle->log;
        pa->timer.cancelable = 1;
        ngx_add_timer(&pa->timer, w->amcf->ack_timeout);
        return;
    }

    ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
        "the target is not connected", NGX_HTTP_AMONITOR_RELEASE);
}


static void
ngx_http_amonitor_router_forward(
    ngx_http_amonitor_pending_t *pa, ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_worker_t *w;

    w = pa->worker;

    if (ngx_http_amonitor_conn_send(&u->wc, pa->msg, 1) != NGX_OK) {
        ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
            "the target's send queue is full", NGX_HTTP_AMONITOR_RELEASE);
        return;
    }

    pa->sent = 1;
    pa->end_offset = u->wc.queued_bytes;

    ngx_http_amonitor_msg_release(w, pa->msg);
    pa->msg = NULL;

    if (ngx_str_rbtree_lookup(&w->pending, &pa->sn.str, pa->sn.node.key)
        == NULL) {
        ngx_rbtree_insert(&w->pending, &pa->sn.node);
        pa->in_tree = 1;
    }

    (void) ngx_atomic_fetch_add(&w->counters->actions, 1);

    if (pa->timer.timer_set) {
        ngx_del_timer(&pa->timer);
    }

    pa->timer.handler = ngx_http_amonitor_router_ack_timeout;
    pa->timer.data = pa;
    pa->timer.log = w->cycle->log;
    pa->timer.cancelable = 1;
    ngx_add_timer(&pa->timer, w->amcf->ack_timeout);
}


static void
ngx_http_amonitor_router_ack_timeout(ngx_event_t *ev)
{
    ngx_http_amonitor_pending_t *pa = ev->data;

    ngx_msec_t                  late;
    ngx_http_amonitor_worker_t *w;

    w = pa->worker;

    if (pa->claiming) {
        ngx_log_error(NGX_LOG_ERR, w->cycle->log, 0,
            "amonitor: the dedupe store did not answer for action \"%V\" "
            "within %M ms",
            &pa->sn.str, w->amcf->ack_timeout);
        ngx_http_amonitor_router_fail(pa, "INTERNAL",
            "the dedupe store did not answer in time",
            NGX_HTTP_AMONITOR_FORGET);
        return;
    }

    if (pa->waiting) {
        ngx_queue_remove(&pa->queue);
        pa->waiting = 0;
        ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
            "the target did not connect in time", NGX_HTTP_AMONITOR_RELEASE);
        return;
    }

    if (pa->timed_out) {
        /* the late window is over too */
        ngx_http_amonitor_router_free(pa);
        return;
    }

    pa->timed_out = 1;
    (void) ngx_atomic_fetch_add(&w->counters->ack_timeouts, 1);

    ngx_log_error(NGX_LOG_ERR, w->cycle->log, 0,
        "amonitor: no ack for action \"%V\" from target \"%V\" "
        "within %M ms",
        &pa->sn.str, &pa->upstream->id, w->amcf->ack_timeout);

    if (pa->panel) {
        ngx_http_amonitor_router_error(pa->panel, pa->binary, &pa->sn.str,
            &pa->target_id, "ACK_TIMEOUT",
            "no ack from the target in time; "
            "the action may still run");
    }

    /* a late ack is still delivered and recorded */
    late = ngx_min(w->amcf->ack_timeout * 10, NGX_HTTP_AMONITOR_LATE_MAX);
    ngx_add_timer(&pa->timer, late);
}


void
ngx_http_amonitor_router_upstream_message(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    int                         rc;
    amon_envelope_t             env;
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_worker_t *w;

    w = u->wc.worker;

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
        ngx_http_amonitor_router_ack(u, &env, opcode, data, len);
        break;

    case AMON_MSG_REGISTER: ngx_http_amonitor_router_register(u, &env); break;

    case AMON_MSG_ACTION:
        ngx_log_error(
            NGX_LOG_INFO, &u->log, 0, "amonitor: action from an SDK ignored");
        break;

    default:
        /* heartbeat, event and types we do not know: to every panel */
        msg = ngx_http_amonitor_msg_frame(w, opcode, data, len, 0);
        if (msg == NULL) {
            break;
        }

        ngx_http_amonitor_panel_broadcast(w, msg);
    }

    amon_envelope_release(&env);
}


static void
ngx_http_amonitor_router_ack(ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len)
{
    u_char                       buf[NGX_HTTP_AMONITOR_RESULT_MAX];
    uint32_t                     hash;
    ngx_str_t                    id, result;
    amon_buf_t                   b;
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_pending_t *pa;

    w = u->wc.worker;

    id.data = (u_char *) env->action_msg_id.data;
    id.len = env->action_msg_id.len;

    hash = ngx_crc32_short(id.data, id.len);
    pa = (ngx_http_amonitor_pending_t *) ngx_str_rbtree_lookup(
        &w->pending, &id, hash);

    if (pa == NULL || pa->upstream != u) {
        ngx_log_error(NGX_LOG_INFO, &u->log, 0,
            "amonitor: ack for an unknown action \"%V\" dropped", &id);
        return;
    }

    (void) ngx_atomic_fetch_add(&w->counters->acks, 1);

    /* the stored result: the ack's payload, or its gist if too long */

    if (!env->binary && env->payload.len <= sizeof(buf)) {
        result.data = (u_char *) env->payload.data;
        result.len = env->payload.len;

    } else {
        b.data = buf;
        b.len = 0;
        b.cap = sizeof(buf);

        result.data = buf;
        result.len = ngx_snprintf(buf, sizeof(buf), "{\"success\":%s}",
                         env->success ? "true" : "false")
            - buf;

        if (env->message.len < sizeof(buf) / 2) {
            b.len = ngx_snprintf(buf, sizeof(buf),
                        "{\"success\":%s,"
                        "\"message\":",
                        env->success ? "true" : "false")
                - buf;

            if (amon_json_append_string(&b, sizeof(buf) - 1, NULL, env->message)
                == AMON_OK) {
                buf[b.len++] = '}';
                result.len = b.len;
            }
        }
    }

    w->store->finish(
        w->store, &pa->sn.str, NGX_HTTP_AMONITOR_CLAIM_DONE, &result);

    if (pa->panel) {
        /* the SDK's bytes, to the panel that asked */
        ngx_http_amonitor_panel_send_data(pa->panel, opcode, data, len);
    }

    ngx_http_amonitor_router_free(pa);
}


static void
ngx_http_amonitor_router_register(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env)
{
    u_char                      norm[AMON_MAX_URL_LEN + 16];
    ngx_str_t                   id, n;
    amon_ws_url_t               wu;
    ngx_http_amonitor_worker_t *w;

    w = u->wc.worker;

    id.data =
        (u_char *) (env->payload_target_id.len ? env->payload_target_id.data
                                               : env->target_id.data);
    id.len = env->payload_target_id.len ? env->payload_target_id.len
                                        : env->target_id.len;

    if (env->sdk_url.len == 0 || id.len == 0) {
        return;
    }

    if (amon_ws_url_parse(env->sdk_url.data, env->sdk_url.len, &wu)
        != AMON_OK) {
        ngx_log_error(NGX_LOG_ERR, &u->log, 0,
            "amonitor: register with an invalid sdk_url ignored");
        return;
    }

    n.data = norm;
    n.len = amon_ws_url_normalize(&wu, norm, sizeof(norm));

    if (ngx_http_amonitor_upstream_find(w, &id)
        || ngx_http_amonitor_upstream_find_url(w, &n)) {
        return;
    }

    if (!ngx_http_amonitor_url_allowed(w->amcf, &wu)) {
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" at \"%V\" ignored: "
            "not allowed by amonitor_allow_url",
            &id, &n);
        return;
    }

    if (w->ndynamic >= NGX_HTTP_AMONITOR_MAX_DYNAMIC) {
        ngx_log_error(NGX_LOG_WARN, &u->log, 0,
            "amonitor: register of \"%V\" ignored: too many learned "
            "targets",
            &id);
        return;
    }

    if (ngx_http_amonitor_upstream_add(w, &id, &wu) != NULL) {
        (void) ngx_http_amonitor_registry_add(w->amcf->shm_zone, &id, &n);
    }
}


void
ngx_http_amonitor_router_panel_gone(ngx_http_amonitor_panel_t *p)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_pending_t *pa;

    w = p->wc.worker;

    if (p->pending == 0) {
        return;
    }

    for (q = ngx_queue_head(&w->pending_all);
         q != ngx_queue_sentinel(&w->pending_all); q = ngx_queue_next(q)) {
        pa = ngx_queue_data(q, ngx_http_amonitor_pending_t, all);

        if (pa->panel == p) {
            /* acks are still recorded; there is no one to tell */
            pa->panel = NULL;
        }
    }

    p->pending = 0;
}


void
ngx_http_amonitor_router_upstream_open(ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_pending_t *pa;

    ngx_http_amonitor_router_target_status(u, "up");

    while (!ngx_queue_empty(&u->waiting)
        && u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
        q = ngx_queue_head(&u->waiting);
        ngx_queue_remove(q);

        pa = ngx_queue_data(q, ngx_http_amonitor_pending_t, queue);
        pa->waiting = 0;

        ngx_http_amonitor_router_forward(pa, u);
    }
}


void
ngx_http_amonitor_router_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected)
{
    ngx_queue_t                 *q, *next;
    ngx_http_amonitor_worker_t  *w;
    ngx_http_amonitor_pending_t *pa;

    w = u->wc.worker;

    while (!ngx_queue_empty(&u->waiting)) {
        q = ngx_queue_head(&u->waiting);
        ngx_queue_remove(q);

        pa = ngx_queue_data(q, ngx_http_amonitor_pending_t, queue);
        pa->waiting = 0;

        ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
            "cannot connect to the target", NGX_HTTP_AMONITOR_RELEASE);
    }

    if (connected) {
        for (q = ngx_queue_head(&w->pending_all);
             q != ngx_queue_sentinel(&w->pending_all); q = next) {
            next = ngx_queue_next(q);
            pa = ngx_queue_data(q, ngx_http_amonitor_pending_t, all);

            if (pa->upstream != u || !pa->sent) {
                continue;
            }

            if (pa->timed_out) {
                /* already answered with ACK_TIMEOUT */
                ngx_http_amonitor_router_free(pa);
                continue;
            }

            if (u->wc.sent_bytes >= pa->end_offset) {
                /* written: it may have run, so the claim stays */
                ngx_http_amonitor_router_fail(pa, "TARGET_DISCONNECTED",
                    "the target disconnected "
                    "before its ack; the outcome "
                    "is unknown",
                    0);

            } else {
                ngx_http_amonitor_router_fail(pa, "TARGET_UNAVAILABLE",
                    "the target disconnected "
                    "before the action was sent",
                    NGX_HTTP_AMONITOR_RELEASE);
            }
        }

        ngx_http_amonitor_router_target_status(u, "down");
    }
}


/* the worker exits: forget what is still pending (the claims stay) */
void
ngx_http_amonitor_router_exit_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_pending_t *pa;

    while (!ngx_queue_empty(&w->pending_all)) {
        q = ngx_queue_head(&w->pending_all);
        pa = ngx_queue_data(q, ngx_http_amonitor_pending_t, all);
        pa->panel = NULL;
        ngx_http_amonitor_router_free(pa);
    }

    amon_buf_free(&w->scratch, &w->allocator);
}


/* end an action with an error; "release" when it never reached the SDK */
static void
ngx_http_amonitor_router_fail(ngx_http_amonitor_pending_t *pa, const char *code,
    const char *message, ngx_uint_t release)
{
    u_char                      buf[256], *p;
    ngx_str_t                   result;
    amon_buf_t                  b;
    ngx_http_amonitor_worker_t *w;

    w = pa->worker;

    (void) ngx_atomic_fetch_add(&w->counters->errors, 1);

    if (release == NGX_HTTP_AMONITOR_RELEASE) {
        w->store->release(w->store, &pa->sn.str);

    } else if (release == NGX_HTTP_AMONITOR_KEEP) {
        b.data = buf;
        b.cap = sizeof(buf);
        p = ngx_snprintf(buf, sizeof(buf),
            "{\"success\":false,\"code\":\"%s\","
            "\"message\":",
            code);
        b.len = p - buf;

        if (amon_json_append_string(&b, sizeof(buf) - 1, NULL,
                (amon_str_t){(const u_char *) message, ngx_strlen(message)})
            == AMON_OK) {
            buf[b.len++] = '}';
            result.data = buf;
            result.len = b.len;
            w->store->finish(
                w->store, &pa->sn.str, NGX_HTTP_AMONITOR_CLAIM_FAILED, &result);
        }
    }

    if (pa->panel) {
        ngx_http_amonitor_router_error(
            pa->panel, pa->binary, &pa->sn.str, &pa->target_id, code, message);
    }

    ngx_http_amonitor_router_free(pa);
}


static void
ngx_http_amonitor_router_free(ngx_http_amonitor_pending_t *pa)
{
    ngx_http_amonitor_worker_t *w;

    w = pa->worker;

    if (pa->timer.timer_set) {
        ngx_del_timer(&pa->timer);
    }

    if (pa->in_tree) {
        ngx_rbtree_delete(&w->pending, &pa->sn.node);
    }

    if (pa->waiting) {
        ngx_queue_remove(&pa->queue);
    }

    if (pa->msg) {
        ngx_http_amonitor_msg_release(w, pa->msg);
    }

    if (pa->panel && pa->panel->pending) {
        pa->panel->pending--;
    }

    ngx_queue_remove(&pa->all);

    if (pa->claiming) {
        /* the store's callback still holds it: it frees it */
        pa->abandoned = 1;
        pa->panel = NULL;
        return;
    }

    ngx_free(pa);
}


static void
ngx_http_amonitor_router_error(ngx_http_amonitor_panel_t *p, ngx_uint_t binary,
    ngx_str_t *msg_id, ngx_str_t *target_id, const char *code,
    const char *message)
{
    amon_str_t                  id, tid, msg;
    ngx_http_amonitor_worker_t *w;

    w = p->wc.worker;

    id.data = (msg_id && msg_id->len) ? msg_id->data : NULL;
    id.len = msg_id ? msg_id->len : 0;
    tid.data = (target_id && target_id->len) ? target_id->data : NULL;
    tid.len = target_id ? target_id->len : 0;
    msg.data = (const unsigned char *) message;
    msg.len = ngx_strlen(message);

    w->scratch.len = 0;

    if (amon_envelope_build_error(&w->scratch, w->amcf->max_message,
            &w->allocator, id, tid, ngx_http_amonitor_router_now(), code, msg,
            binary)
        != AMON_OK) {
        return;
    }

    ngx_http_amonitor_panel_send_data(p,
        binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, w->scratch.data,
        w->scratch.len);
}


/* tell panels a target went up or down (a message type old panels skip) */
static void
ngx_http_amonitor_router_target_status(
    ngx_http_amonitor_upstream_t *u, const char *state)
{
    u_char                      id[36], payload[AMON_MAX_URL_LEN + 512];
    amon_buf_t                  b;
    amon_envelope_out_t         e;
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_worker_t *w;

    w = u->wc.worker;

    if (ngx_queue_empty(&w->panels)) {
        return;
    }

    b.data = payload;
    b.len = 0;
    b.cap = sizeof(payload);

    b.len = ngx_sprintf(payload, "{\"target_id\":") - payload;

    if (amon_json_append_string(&b, sizeof(payload) - 64, NULL,
            (amon_str_t) ngx_http_amonitor_str(&u->id))
        != AMON_OK) {
        return;
    }

    b.len = ngx_sprintf(payload + b.len, ",\"state\":\"%s\",\"url\":", state)
        - payload;

    if (amon_json_append_string(&b, sizeof(payload) - 2, NULL,
            (amon_str_t) ngx_http_amonitor_str(&u->norm))
        != AMON_OK) {
        return;
    }

    payload[b.len++] = '}';

    ngx_http_amonitor_router_uuid(id);

    ngx_memzero(&e, sizeof(amon_envelope_out_t));
    e.msg_id.data = id;
    e.msg_id.len = 36;
    e.type.data = (const unsigned char *) "target_status";
    e.type.len = sizeof("target_status") - 1;
    e.target_id.data = u->id.data;
    e.target_id.len = u->id.len;
    e.timestamp = ngx_http_amonitor_router_now();
    e.payload_json.data = payload;
    e.payload_json.len = b.len;

    w->scratch.len = 0;

    if (amon_envelope_build_json(
            &w->scratch, w->amcf->max_message, &w->allocator, &e)
        != AMON_OK) {
        return;
    }

    msg = ngx_http_amonitor_msg_frame(
        w, AMON_WS_OP_TEXT, w->scratch.data, w->scratch.len, 0);
    if (msg != NULL) {
        ngx_http_amonitor_panel_broadcast(w, msg);
    }
}


static int64_t
ngx_http_amonitor_router_now(void)
{
    ngx_time_t *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


static void
ngx_http_amonitor_router_uuid(u_char *out)
{
    u_char   rnd[16];
    uint32_t r;
    size_t   i;

    for (i = 0; i < 16; i += 4) {
        r = (uint32_t) ngx_random();
        ngx_memcpy(&rnd[i], &r, 4);
    }

    amon_uuid4(rnd, out);
}
