/*
 * Copyright (C) AMonitor authors
 *
 * Actions across workers, the asking side (the owner's: cluster_action.c).
 * The worker whose panel asked claims the msg_id (as for a local action)
 * and sends the action's frame to the channel of the worker holding the
 * target's lease, in one script: Redis says how many workers got it.  The
 * asking worker keeps its own ack timeout.
 *
 * When the script names no owner that got it (right after Redis lost its
 * data, -2: the owner takes its lease back at its next renewal; or the
 * owner died, 0 and then -1, while the target was up: another worker
 * takes the lease over), the action waits here, its frame kept, and is
 * sent again every 100 ms while it waits for its ack, for at most half
 * the ack timeout (cl->on_hold says).  If this worker takes the lease
 * meanwhile, the frame is written to the SDK from here (cl->on_rehome).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_cluster.h"


/*
 * The owner of KEYS[1] gets ARGV[2] on its channel (ARGV[1] .. owner),
 * with ARGV[3] (the claim's field) if its token says it takes it; no
 * owner: -2 while Redis's data loss is marked (KEYS[3]), else -1
 */
/* clang-format off */
#define NGX_HTTP_AMONITOR_LUA_TO_OWNER \
    "local o = redis.call('GET', KEYS[1]) " \
    "if not o then " \
    NGX_HTTP_AMONITOR_LUA_LOST("2", "4") \
    "local t = redis.call('PTTL', KEYS[3]) " \
    "if t > 0 and t <= tonumber(ARGV[5]) then return -2 end " \
    "return -1 end " \
    "local m = ARGV[2] " \
    "if string.sub(o, -2) == ';c' then m = m .. ARGV[3] end " \
    "return redis.call('PUBLISH', ARGV[1] .. o, m)"
/* clang-format on */


/* how often a held action is sent again: the answer is at most this late */
#define NGX_HTTP_AMONITOR_HOLD_RETRY 100


/*
 * What the asking worker remembers until Redis says who got the action:
 * the bus message too, while it may be sent again (cl->held)
 */
typedef struct {
    ngx_queue_t                  queue; /* cl->held */
    ngx_http_amonitor_cluster_t *cl;
    ngx_str_t                    target;
    ngx_str_t                    msg_id;
    ngx_str_t                    msg; /* packed, ngx_alloc()ed */
    size_t                       tail; /* the claim's field, at its end */
    size_t                       frame; /* the frame's length, before it */
    ngx_int_t                    got; /* the last answer: 0, -1, -2 */
    ngx_uint_t                   tries;
} ngx_http_amonitor_forward_t;


static ngx_int_t ngx_http_amonitor_forward_send(
    ngx_http_amonitor_forward_t *fw, ngx_http_amonitor_lease_t *l);
static void ngx_http_amonitor_cluster_forwarded(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply);
static void ngx_http_amonitor_forward_retry(ngx_event_t *ev);
static void ngx_http_amonitor_forward_error(
    ngx_http_amonitor_forward_t *fw, ngx_int_t got);
static void ngx_http_amonitor_forward_free(ngx_http_amonitor_forward_t *fw);


/*
 * NGX_DECLINED: not in a cluster, or this worker holds the target (the
 * local path); NGX_OK: on its way to the owner (its ack or error comes
 * back on this worker's channel); NGX_AGAIN: nobody is known to hold it
 * yet, this worker asks for its lease (the action waits on the target for
 * the answer: this worker's own dial, or the owner); NGX_ERROR: the bus is
 * down.
 */
ngx_int_t
ngx_http_amonitor_cluster_forward(ngx_http_amonitor_upstream_t *u,
    ngx_str_t *msg_id, ngx_http_amonitor_msg_t *frame)
{
    u_char                      *p;
    ngx_str_t                    f[5], msg;
    ngx_http_amonitor_lease_t   *l;
    ngx_http_amonitor_cluster_t *cl;
    ngx_http_amonitor_forward_t *fw;

    cl = u->worker->cluster;
    if (cl == NULL) {
        return NGX_DECLINED;
    }

    l = ngx_http_amonitor_lease_get(cl, u);
    if (l == NULL) {
        return NGX_ERROR;
    }

    if (l->owned) {
        return NGX_DECLINED;
    }

    if (!ngx_http_amonitor_bus_ready(cl)) {
        /* the ack comes back on this worker's subscription: it is needed */
        return NGX_ERROR;
    }

    if (!l->settled) {
        if (!l->busy) {
            ngx_http_amonitor_lease_acquire(cl, l);
        }

        return NGX_AGAIN;
    }

    f[0] = cl->token;
    f[1] = u->id;
    f[2] = *msg_id;
    f[3].data = frame->data;
    f[3].len = frame->len;

    /* the claim's value: the owner holds it too while the action runs */
    if (ngx_http_amonitor_redis_claim_token(u->worker->store, msg_id,
            ngx_http_amonitor_hash(msg_id->data, msg_id->len), &f[4])
        != NGX_OK) {
        ngx_str_null(&f[4]);
    }

    if (ngx_http_amonitor_bus_pack(
            u->worker, NGX_HTTP_AMONITOR_BUS_ACTION, f, 5, &msg)
        != NGX_OK) {
        return NGX_ERROR;
    }

    fw = ngx_alloc(
        sizeof(ngx_http_amonitor_forward_t) + u->id.len + msg_id->len, cl->log);
    if (fw == NULL) {
        ngx_free(msg.data);
        return NGX_ERROR;
    }

    p = (u_char *) (fw + 1);
    fw->cl = cl;
    fw->target.data = p;
    fw->target.len = u->id.len;
    p = ngx_cpymem(p, u->id.data, u->id.len);
    fw->msg_id.data = p;
    fw->msg_id.len = msg_id->len;
    ngx_memcpy(p, msg_id->data, msg_id->len);
    fw->msg = msg;
    fw->got = 0;
    fw->tries = 0;
    fw->frame = frame->len;

    /* the fifth field apart: an owner of an earlier version gets four */
    fw->tail = f[4].len ? 4 + f[4].len : 4;

    if (ngx_http_amonitor_forward_send(fw, l) != NGX_OK) {
        ngx_http_amonitor_forward_free(fw);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_forward_send(
    ngx_http_amonitor_forward_t *fw, ngx_http_amonitor_lease_t *l)
{
    size_t                       tail, claim;
    ngx_http_amonitor_cluster_t *cl;

    cl = fw->cl;
    tail = fw->tail;
    claim = tail > 4 ? tail : 0;

    fw->tries++;

    return ngx_http_amonitor_redis_command(cl->cmd,
        ngx_http_amonitor_cluster_forwarded, fw, "EVAL to owner",
        "EVAL %s 3 %b %b %b %b %b %b %b %lu", NGX_HTTP_AMONITOR_LUA_TO_OWNER,
        l->key.data, l->key.len, cl->k_state.data, cl->k_state.len,
        cl->k_lost.data, cl->k_lost.len, cl->w_prefix.data, cl->w_prefix.len,
        fw->msg.data, fw->msg.len - tail, fw->msg.data + fw->msg.len - tail,
        claim, cl->ch_owners.data, cl->ch_owners.len,
        (unsigned long) cl->conf->lease * 3 / 4);
}


/*
 * How many workers got it: none is held and sent again soon while the
 * action may wait (above), else an error the panel gets at once.  No
 * answer at all: it may have reached
 * the owner, so the action's own ack timeout ends it (never released for a
 * retry).
 */
static void
ngx_http_amonitor_cluster_forwarded(
    ngx_http_amonitor_redis_t *ctx, void *data, redisReply *reply)
{
    ngx_http_amonitor_forward_t *fw = data;

    ngx_http_amonitor_cluster_t *cl;

    cl = fw->cl;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer > 0) {
        ngx_http_amonitor_forward_free(fw);
        return;
    }

    fw->got = (ngx_int_t) reply->integer;

    /* (on_ready is unset when the worker exits: nothing waits then) */
    if (fw->got >= -2 && cl->on_ready && !ngx_exiting
        && cl->on_hold(cl->worker, &fw->target, &fw->msg_id, fw->got)) {
        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, cl->log, 0,
            "amonitor cluster: action \"%V\" held, try %ui, answer %i",
            &fw->msg_id, fw->tries, fw->got);

        ngx_queue_insert_tail(&cl->held, &fw->queue);

        if (!cl->hold.timer_set) {
            cl->hold.handler = ngx_http_amonitor_forward_retry;
            cl->hold.data = cl;
            cl->hold.log = cl->log;
            cl->hold.cancelable = 1;
            ngx_add_timer(&cl->hold, NGX_HTTP_AMONITOR_HOLD_RETRY);
        }

        return;
    }

    ngx_http_amonitor_forward_error(fw, fw->got);
    ngx_http_amonitor_forward_free(fw);
}


/* the held actions are sent again, or end as they would have */
static void
ngx_http_amonitor_forward_retry(ngx_event_t *ev)
{
    ngx_queue_t                   list, *q;
    ngx_http_amonitor_lease_t    *l;
    ngx_http_amonitor_cluster_t  *cl;
    ngx_http_amonitor_forward_t  *fw;
    ngx_http_amonitor_upstream_t *u;

    cl = ev->data;

    ngx_queue_init(&list);
    ngx_queue_add(&list, &cl->held);
    ngx_queue_init(&cl->held);

    while (!ngx_queue_empty(&list)) {
        q = ngx_queue_head(&list);
        ngx_queue_remove(q);
        fw = ngx_queue_data(q, ngx_http_amonitor_forward_t, queue);

        if (!cl->on_hold(cl->worker, &fw->target, &fw->msg_id, fw->got)) {
            /* answered meanwhile, or half its ack timeout gone */
            ngx_http_amonitor_forward_error(fw, fw->got);
            ngx_http_amonitor_forward_free(fw);
            continue;
        }

        u = ngx_http_amonitor_target_find(cl->worker, &fw->target);
        l = u ? ngx_http_amonitor_lease_get(cl, u) : NULL;

        if (l && l->owned) {
            /* this worker took the lease meanwhile: it runs it here */
            if (cl->on_rehome(cl->worker, &fw->target, &fw->msg_id,
                    fw->msg.data + fw->msg.len - fw->tail - fw->frame,
                    fw->frame)
                != NGX_OK) {
                ngx_http_amonitor_forward_error(fw, fw->got);
            }

            ngx_http_amonitor_forward_free(fw);
            continue;
        }

        if (l == NULL || !ngx_http_amonitor_bus_ready(cl)
            || ngx_http_amonitor_forward_send(fw, l) != NGX_OK) {
            ngx_http_amonitor_forward_error(fw, fw->got);
            ngx_http_amonitor_forward_free(fw);
        }
    }
}


/* an error for the action, if it still waits (an action ended ignores it) */
static void
ngx_http_amonitor_forward_error(ngx_http_amonitor_forward_t *fw, ngx_int_t got)
{
    ngx_http_amonitor_bus_msg_t m;

    if (fw->cl->on_message == NULL) {
        return;
    }

    m.kind = NGX_HTTP_AMONITOR_BUS_ERROR;
    m.n = 4;
    m.f[0] = fw->target;
    m.f[1] = fw->msg_id;
    ngx_str_set(&m.f[2], "TARGET_UNAVAILABLE");

    if (got == -2) {
        ngx_str_set(&m.f[3],
            "the cluster's Redis lost its data a moment ago, and the "
            "target's owner has not taken its lease back yet (retry)");

    } else if (got < 0) {
        ngx_str_set(&m.f[3],
            "no agent in the cluster holds a connection to the target");

    } else {
        ngx_str_set(
            &m.f[3], "the agent holding the target's connection is gone");
    }

    fw->cl->on_message(fw->cl, &m);
}


static void
ngx_http_amonitor_forward_free(ngx_http_amonitor_forward_t *fw)
{
    ngx_free(fw->msg.data);
    ngx_free(fw);
}


/* the worker exits: its actions end with it */
void
ngx_http_amonitor_forward_exit(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t                 *q;
    ngx_http_amonitor_forward_t *fw;

    if (cl->hold.timer_set) {
        ngx_del_timer(&cl->hold);
    }

    while (!ngx_queue_empty(&cl->held)) {
        q = ngx_queue_head(&cl->held);
        ngx_queue_remove(q);
        fw = ngx_queue_data(q, ngx_http_amonitor_forward_t, queue);
        ngx_http_amonitor_forward_free(fw);
    }
}
