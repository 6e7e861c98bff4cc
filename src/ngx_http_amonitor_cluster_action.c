/*
 * Copyright (C) AMonitor authors
 *
 * Actions across workers, the owner's side (the asking side:
 * cluster_forward.c).  The worker holding the target's lease writes an
 * action that came on its channel to its SDK once and sends the SDK's ack,
 * or an error, back to the asking worker's channel only.  The claim's
 * value goes with the action: the owner holds the claim too while its SDK
 * works, and records the outcome as the asking worker does, which may
 * die or miss the ack meanwhile.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor_cluster.h"


static void ngx_http_amonitor_remote_answer(ngx_http_amonitor_cluster_t *cl,
    ngx_str_t *reply_to, ngx_str_t *target, ngx_str_t *msg_id, const char *code,
    const char *message);
static ngx_http_amonitor_lease_t *ngx_http_amonitor_remote_lease(
    ngx_http_amonitor_cluster_t *cl, ngx_str_t *id);
static void ngx_http_amonitor_remote_write(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, ngx_http_amonitor_msg_t *msg);
static void ngx_http_amonitor_remote_waited(ngx_event_t *ev);
static void ngx_http_amonitor_remote_unwait(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, ngx_uint_t release);
static void ngx_http_amonitor_remote_unheld(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, ngx_uint_t release);
static void ngx_http_amonitor_remote_keep(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, const char *code, const char *message);
static void ngx_http_amonitor_remote_free(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_remote_t *r);


/*
 * The owner: an action from another worker, for a target it holds.  While
 * this worker's connection to it is being made (the lease was just taken
 * for a new target, the first actions of several instances at once), it
 * waits for it, at most half the ack timeout, as the asking worker's own
 * actions would.
 */
void
ngx_http_amonitor_remote_run(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_bus_msg_t *m)
{
    u_char                       *p;
    ngx_http_amonitor_msg_t      *msg;
    ngx_http_amonitor_lease_t    *l;
    ngx_http_amonitor_remote_t   *r;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *u;

    w = cl->worker;

    if (m->n != 4 && m->n != 5) {
        return;
    }

    if (m->n == 4) {
        /* from an instance of an earlier version: no claim with it */
        ngx_str_null(&m->f[4]);
    }

    l = ngx_http_amonitor_remote_lease(cl, &m->f[1]);
    u = l ? l->upstream : NULL;

    if (u == NULL
        || (l->owned && u->state != NGX_HTTP_AMONITOR_UP_OPEN
            && u->state != NGX_HTTP_AMONITOR_UP_CONNECTING
            && u->state != NGX_HTTP_AMONITOR_UP_HANDSHAKE)) {
        ngx_http_amonitor_remote_answer(cl, &m->f[0], &m->f[1], &m->f[2],
            "TARGET_UNAVAILABLE", "the target is not connected");
        return;
    }

    r = ngx_calloc(sizeof(ngx_http_amonitor_remote_t) + m->f[2].len
            + m->f[0].len + m->f[4].len,
        cl->log);
    msg = ngx_http_amonitor_msg_alloc(&w->frames, m->f[3].len);

    if (r == NULL || msg == NULL) {
        if (r) {
            ngx_free(r);
        }

        if (msg) {
            ngx_http_amonitor_msg_release(&w->frames, msg);
        }

        ngx_http_amonitor_remote_answer(cl, &m->f[0], &m->f[1], &m->f[2],
            "TARGET_UNAVAILABLE", "out of memory");
        return;
    }

    /* the frame as the asking worker made it: masked, bytes unchanged */
    ngx_memcpy(msg->data, m->f[3].data, m->f[3].len);
    msg->len = m->f[3].len;
    msg->refs++;

    p = (u_char *) (r + 1);
    r->sn.str.data = p;
    r->sn.str.len = m->f[2].len;
    p = ngx_cpymem(p, m->f[2].data, m->f[2].len);
    r->reply_to.data = p;
    r->reply_to.len = m->f[0].len;
    p = ngx_cpymem(p, m->f[0].data, m->f[0].len);
    r->claim.data = p;
    r->claim.len = m->f[4].len;
    ngx_memcpy(p, m->f[4].data, m->f[4].len);

    r->sn.node.key = ngx_http_amonitor_hash(r->sn.str.data, r->sn.str.len);
    r->upstream = u;

    /*
     * The claim is held here too from now on, renewed while the action
     * waits for the connection and runs, so that the outcome is recorded
     * even if the asking worker dies before it learns it
     */
    r->adopted = r->claim.len
        && ngx_http_amonitor_redis_adopt(
               w->store, &r->sn.str, (uint32_t) r->sn.node.key, &r->claim)
            == NGX_OK;

    if (u->state != NGX_HTTP_AMONITOR_UP_OPEN || !l->owned) {
        r->msg = msg;
        r->wait.handler = ngx_http_amonitor_remote_waited;
        r->wait.data = r;
        r->wait.log = cl->log;
        r->wait.cancelable = 1;

        ngx_queue_insert_tail(&cl->remote_wait, &r->queue);
        ngx_add_timer(&r->wait, ngx_max(w->amcf->ack_timeout / 2, 1));

        if (!l->owned && !l->busy) {
            /* its last try was not answered: ask now, not at the tick */
            ngx_http_amonitor_lease_acquire(cl, l);
        }

        return;
    }

    ngx_http_amonitor_remote_write(cl, r, msg);
}


/*
 * The lease of target "id" if this worker holds it, or has asked for it
 * and not read the answer (Redis, which sent the action here, may have
 * given it: the answer comes on the other connection, and may come after
 * the action), or never got one (a lease taken while its answer was lost
 * with the connection, which the next try finds ours)
 */
static ngx_http_amonitor_lease_t *
ngx_http_amonitor_remote_lease(ngx_http_amonitor_cluster_t *cl, ngx_str_t *id)
{
    ngx_http_amonitor_lease_t    *l;
    ngx_http_amonitor_upstream_t *u;

    u = ngx_http_amonitor_target_find(cl->worker, id);
    l = u ? u->lease : NULL;

    if (l && (l->owned || l->acquiring || !l->settled)) {
        return l;
    }

    return NULL;
}


/* to the SDK: the ack is awaited (r is in no list yet) */
static void
ngx_http_amonitor_remote_write(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, ngx_http_amonitor_msg_t *msg)
{
    ngx_int_t                     rc;
    ngx_http_amonitor_tstate_t   *ts;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *u;

    w = cl->worker;
    u = r->upstream;

    rc = ngx_http_amonitor_conn_send(&u->wc, msg, 1);

    ngx_http_amonitor_msg_release(&w->frames, msg);

    if (rc != NGX_OK) {
        ngx_http_amonitor_remote_answer(cl, &r->reply_to, &u->id, &r->sn.str,
            "TARGET_UNAVAILABLE",
            (!u->wc.open || u->wc.close_sent || ngx_exiting || ngx_quit)
                ? "the agent holding the target's connection is closing it"
                : "the target's send queue is full");
        ngx_http_amonitor_remote_unheld(cl, r, 1);
        ngx_free(r);
        return;
    }

    r->end_offset = u->wc.queued_bytes;
    r->deadline =
        ngx_current_msec + w->amcf->ack_timeout + w->amcf->late_window;

    ngx_rbtree_insert(&cl->remote_tree, &r->sn.node);
    ngx_queue_insert_tail(&cl->remote, &r->queue);

    (void) ngx_atomic_fetch_add(&w->counters->actions, 1);

    if (u->tstate) {
        /* the target's count is where it is written, as its acks' */
        ts = u->tstate;
        (void) ngx_atomic_fetch_add(&ts->actions, 1);
    }
}


/* the connection did not open in time: never written, so released */
static void
ngx_http_amonitor_remote_waited(ngx_event_t *ev)
{
    ngx_http_amonitor_remote_t *r = ev->data;

    ngx_http_amonitor_cluster_t *cl;

    cl = r->upstream->worker->cluster;

    ngx_http_amonitor_remote_answer(cl, &r->reply_to, &r->upstream->id,
        &r->sn.str, "TARGET_UNAVAILABLE", "the target did not connect in time");
    ngx_http_amonitor_remote_unwait(cl, r, 1);
}


/* the owner's connection is open: what waited for it is written now */
void
ngx_http_amonitor_remote_open(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_t                *q, *next;
    ngx_http_amonitor_msg_t    *msg;
    ngx_http_amonitor_remote_t *r;

    if (u->state != NGX_HTTP_AMONITOR_UP_OPEN) {
        return;
    }

    for (q = ngx_queue_head(&cl->remote_wait);
         q != ngx_queue_sentinel(&cl->remote_wait); q = next) {
        next = ngx_queue_next(q);
        r = ngx_queue_data(q, ngx_http_amonitor_remote_t, queue);

        if (r->upstream != u) {
            continue;
        }

        ngx_queue_remove(q);

        if (r->wait.timer_set) {
            ngx_del_timer(&r->wait);
        }

        msg = r->msg;
        r->msg = NULL;

        ngx_http_amonitor_remote_write(cl, r, msg);
    }
}


/* never written: released ("release", as the asking worker does), or left */
static void
ngx_http_amonitor_remote_unwait(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, ngx_uint_t release)
{
    ngx_http_amonitor_remote_unheld(cl, r, release);
    ngx_queue_remove(&r->queue);

    if (r->wait.timer_set) {
        ngx_del_timer(&r->wait);
    }

    ngx_http_amonitor_msg_release(&cl->worker->frames, r->msg);
    ngx_free(r);
}


/*
 * The owner: an SDK's ack that no local action waits for.  NGX_OK when it
 * answers an action of another worker (sent back to it, bytes unchanged).
 */
ngx_int_t
ngx_http_amonitor_cluster_ack(ngx_http_amonitor_upstream_t *u,
    ngx_str_t *msg_id, ngx_uint_t opcode, u_char *data, size_t len)
{
    u_char                       op;
    ngx_str_t                    f[3], ch;
    ngx_http_amonitor_remote_t  *r;
    ngx_http_amonitor_cluster_t *cl;

    cl = u->worker->cluster;
    if (cl == NULL) {
        return NGX_DECLINED;
    }

    r = (ngx_http_amonitor_remote_t *) ngx_str_rbtree_lookup(&cl->remote_tree,
        msg_id, ngx_http_amonitor_hash(msg_id->data, msg_id->len));

    if (r == NULL || r->upstream != u) {
        return NGX_DECLINED;
    }

    op = (u_char) ('0' + opcode);

    f[0] = u->id;
    f[1].data = &op;
    f[1].len = 1;
    f[2].data = data;
    f[2].len = len;

    ch.len = cl->w_prefix.len + r->reply_to.len;
    ch.data = ngx_alloc(ch.len, cl->log);

    if (ch.data) {
        ngx_memcpy(ngx_cpymem(ch.data, cl->w_prefix.data, cl->w_prefix.len),
            r->reply_to.data, r->reply_to.len);
        (void) ngx_http_amonitor_bus_publish(
            cl, &ch, NGX_HTTP_AMONITOR_BUS_ACK, f, 3, 0);
        ngx_free(ch.data);
    }

    if (r->adopted) {
        /* the caller records the ack (action_end.c) */
        r->adopted = 0;
        ngx_http_amonitor_remote_free(cl, r);
        return NGX_DONE;
    }

    ngx_http_amonitor_remote_free(cl, r);

    return NGX_OK;
}


/* an error for the asking worker, on its channel */
static void
ngx_http_amonitor_remote_answer(ngx_http_amonitor_cluster_t *cl,
    ngx_str_t *reply_to, ngx_str_t *target, ngx_str_t *msg_id, const char *code,
    const char *message)
{
    ngx_str_t f[4], ch;

    f[0] = *target;
    f[1] = *msg_id;
    f[2].data = (u_char *) code;
    f[2].len = ngx_strlen(code);
    f[3].data = (u_char *) message;
    f[3].len = ngx_strlen(message);

    ch.len = cl->w_prefix.len + reply_to->len;
    ch.data = ngx_alloc(ch.len, cl->log);
    if (ch.data == NULL) {
        return;
    }

    ngx_memcpy(ngx_cpymem(ch.data, cl->w_prefix.data, cl->w_prefix.len),
        reply_to->data, reply_to->len);

    (void) ngx_http_amonitor_bus_publish(
        cl, &ch, NGX_HTTP_AMONITOR_BUS_ERROR, f, 4, 0);

    ngx_free(ch.data);
}


/* the owner's connection went: the actions it ran for others end */
void
ngx_http_amonitor_remote_down(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected)
{
    ngx_queue_t                *q, *next;
    ngx_http_amonitor_remote_t *r;
    static const char          *disconnected =
        "the target disconnected before its ack; the outcome is unknown";

    for (q = ngx_queue_head(&cl->remote_wait);
         q != ngx_queue_sentinel(&cl->remote_wait); q = next) {
        next = ngx_queue_next(q);
        r = ngx_queue_data(q, ngx_http_amonitor_remote_t, queue);

        if (r->upstream == u) {
            ngx_http_amonitor_remote_answer(cl, &r->reply_to, &u->id,
                &r->sn.str, "TARGET_UNAVAILABLE",
                "cannot connect to the target");
            ngx_http_amonitor_remote_unwait(cl, r, 1);
        }
    }

    for (q = ngx_queue_head(&cl->remote); q != ngx_queue_sentinel(&cl->remote);
         q = next) {
        next = ngx_queue_next(q);
        r = ngx_queue_data(q, ngx_http_amonitor_remote_t, queue);

        if (r->upstream != u) {
            continue;
        }

        if (connected && u->wc.sent_bytes >= r->end_offset) {
            ngx_http_amonitor_remote_answer(cl, &r->reply_to, &u->id,
                &r->sn.str, "TARGET_DISCONNECTED", disconnected);
            ngx_http_amonitor_remote_keep(
                cl, r, "TARGET_DISCONNECTED", disconnected);

        } else {
            ngx_http_amonitor_remote_answer(cl, &r->reply_to, &u->id,
                &r->sn.str, "TARGET_UNAVAILABLE",
                "the target disconnected before the action was sent");

            ngx_http_amonitor_remote_unheld(cl, r, 1);
        }

        ngx_http_amonitor_remote_free(cl, r);
    }
}


/* the asking worker has given up on these long ago: forget them */
void
ngx_http_amonitor_remote_expire(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t                *q;
    ngx_http_amonitor_remote_t *r;

    while (!ngx_queue_empty(&cl->remote)) {
        q = ngx_queue_head(&cl->remote);
        r = ngx_queue_data(q, ngx_http_amonitor_remote_t, queue);

        if ((ngx_msec_int_t) (r->deadline - ngx_current_msec) > 0) {
            break;
        }

        /* as the asking worker ends it (action_end.c), if it is gone */
        ngx_http_amonitor_remote_keep(cl, r, "ACK_TIMEOUT",
            cl->worker->amcf->late_window
                ? "no ack from the target within the late window; the "
                  "outcome is unknown"
                : "no ack from the target in time; the outcome is unknown");

        ngx_http_amonitor_remote_free(cl, r);
    }
}


void
ngx_http_amonitor_remote_exit(ngx_http_amonitor_cluster_t *cl)
{
    ngx_queue_t                *q;
    ngx_http_amonitor_remote_t *r;

    while (!ngx_queue_empty(&cl->remote_wait)) {
        q = ngx_queue_head(&cl->remote_wait);
        r = ngx_queue_data(q, ngx_http_amonitor_remote_t, queue);
        ngx_http_amonitor_remote_unwait(cl, r, 0);
    }

    while (!ngx_queue_empty(&cl->remote)) {
        q = ngx_queue_head(&cl->remote);
        r = ngx_queue_data(q, ngx_http_amonitor_remote_t, queue);
        ngx_http_amonitor_remote_free(cl, r);
    }
}


/*
 * An action written for another worker that may have run and will not
 * be acked: its claim ends as FAILED with the error that worker gets, the
 * same bytes, whichever of the two writes it first
 */
static void
ngx_http_amonitor_remote_keep(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, const char *code, const char *message)
{
    u_char                     sbuf[NGX_HTTP_AMONITOR_STORED_MAX];
    ngx_str_t                  stored;
    ngx_http_amonitor_store_t *st;

    if (!r->adopted) {
        return;
    }

    r->adopted = 0;
    st = cl->worker->store;
    stored.data = sbuf;

    if (ngx_http_amonitor_stored_error(&stored, &r->upstream->id, code, message)
        == NGX_OK) {
        st->finish(st, &r->sn.str, (uint32_t) r->sn.node.key,
            NGX_HTTP_AMONITOR_CLAIM_FAILED, &stored);

    } else {
        ngx_http_amonitor_redis_disown(
            st, &r->sn.str, (uint32_t) r->sn.node.key);
    }
}


/*
 * The claim held here too ends with nothing recorded: released when the
 * action was never written ("release", as the asking worker does), else
 * left to the asking worker (this worker exits)
 */
static void
ngx_http_amonitor_remote_unheld(ngx_http_amonitor_cluster_t *cl,
    ngx_http_amonitor_remote_t *r, ngx_uint_t release)
{
    ngx_http_amonitor_store_t *st;

    if (!r->adopted) {
        return;
    }

    r->adopted = 0;
    st = cl->worker->store;

    if (release) {
        st->release(st, &r->sn.str);

    } else {
        ngx_http_amonitor_redis_disown(
            st, &r->sn.str, (uint32_t) r->sn.node.key);
    }
}


static void
ngx_http_amonitor_remote_free(
    ngx_http_amonitor_cluster_t *cl, ngx_http_amonitor_remote_t *r)
{
    ngx_http_amonitor_remote_unheld(cl, r, 0);

    ngx_rbtree_delete(&cl->remote_tree, &r->sn.node);
    ngx_queue_remove(&r->queue);
    ngx_free(r);
}


/* a connection of this worker failed or closed */
void
ngx_http_amonitor_cluster_upstream_down(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t connected)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = u->worker->cluster;
    if (cl == NULL) {
        return;
    }

    ngx_http_amonitor_remote_down(cl, u, connected);
    ngx_http_amonitor_lease_down(cl, u);
}


/* a connection of this worker is open */
void
ngx_http_amonitor_cluster_upstream_open(ngx_http_amonitor_upstream_t *u)
{
    ngx_http_amonitor_cluster_t *cl;

    cl = u->worker->cluster;
    if (cl == NULL) {
        return;
    }

    ngx_http_amonitor_remote_open(cl, u);
}
