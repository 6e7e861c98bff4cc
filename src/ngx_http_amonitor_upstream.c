/*
 * Copyright (C) AMonitor authors
 *
 * The upstream side: every worker keeps one client WebSocket connection to
 * every target (configured, or learned at run time through the zone's
 * registry), inside nginx's event loop, with capped exponential backoff
 * plus jitter between attempts.  Only this file decides which worker owns
 * an upstream connection: each worker owns its own, to every target.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_subscribe.h"
#include "ngx_http_amonitor_upstream.h"


static void ngx_http_amonitor_upstream_stop(
    ngx_http_amonitor_upstream_t *u, const char *why);
static ngx_http_amonitor_upstream_t *ngx_http_amonitor_upstream_create(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, ngx_str_t *norm,
    ngx_str_t *host_port, ngx_str_t *path, ngx_str_t *token, ngx_addr_t *addrs,
    ngx_uint_t naddrs);
static ngx_int_t ngx_http_amonitor_upstream_tls_name(
    ngx_http_amonitor_upstream_t *u, amon_ws_url_t *wu);
static void ngx_http_amonitor_upstream_reconcile(ngx_event_t *ev);
static void ngx_http_amonitor_upstream_unlist(ngx_http_amonitor_upstream_t *u);
static void ngx_http_amonitor_upstream_first_dials(ngx_event_t *ev);
static ngx_http_amonitor_upstream_t *ngx_http_amonitor_upstream_learned(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *wu);
static void ngx_http_amonitor_upstream_follow(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_reg_change_t *ch, ngx_uint_t n, ngx_uint_t all);
static ngx_uint_t ngx_http_amonitor_upstream_follow_one(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_reg_change_t *ch,
    ngx_uint_t all);


ngx_int_t
ngx_http_amonitor_upstream_init_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_uint_t                       i;
    ngx_http_amonitor_upstream_t    *u;
    ngx_http_amonitor_target_conf_t *t;

    ngx_rbtree_init(&w->upstream_ids, &w->upstream_ids_sentinel,
        ngx_str_rbtree_insert_value);
    ngx_rbtree_init(&w->upstream_urls, &w->upstream_urls_sentinel,
        ngx_str_rbtree_insert_value);
    ngx_queue_init(&w->learned);
    ngx_queue_init(&w->dialed);

    t = w->amcf->targets.elts;

    for (i = 0; i < w->amcf->targets.nelts; i++) {
        u = ngx_http_amonitor_upstream_create(w, &t[i].id, &t[i].norm,
            &t[i].host_port, &t[i].path, &t[i].token, t[i].addrs, t[i].naddrs);
        if (u == NULL) {
            return NGX_ERROR;
        }

        u->tls = t[i].tls;
        u->host = t[i].host;
        u->first_dial = 1;
    }

    w->first_dials.handler = ngx_http_amonitor_upstream_first_dials;
    w->first_dials.data = w;
    w->first_dials.log = w->cycle->log;
    w->first_dials.cancelable = 1;

    ngx_http_amonitor_upstream_first_dials(&w->first_dials);

    w->reconcile.handler = ngx_http_amonitor_upstream_reconcile;
    w->reconcile.data = w;
    w->reconcile.log = w->cycle->log;
    w->reconcile.cancelable = 1;

    ngx_add_timer(&w->reconcile, NGX_HTTP_AMONITOR_RECONCILE);

    return NGX_OK;
}


void
ngx_http_amonitor_upstream_exit_worker(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t                  *q;
    ngx_http_amonitor_upstream_t *u;

    ngx_http_amonitor_noack_say_quiet(w);

    if (w->reconcile.timer_set) {
        ngx_del_timer(&w->reconcile);
    }

    if (w->first_dials.timer_set) {
        ngx_del_timer(&w->first_dials);
    }

    while (!ngx_queue_empty(&w->upstreams)) {
        q = ngx_queue_head(&w->upstreams);
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        ngx_http_amonitor_upstream_stop(u, "agent shutting down");

        /* actions waiting for it got their answer in upstream_fail */
        ngx_destroy_pool(u->pool);
    }
}


/* out of the worker's lists and its indexes by id and by URL */
static void
ngx_http_amonitor_upstream_unlist(ngx_http_amonitor_upstream_t *u)
{
    ngx_queue_remove(&u->queue);
    u->worker->upstreams_gen++;
    ngx_rbtree_delete(&u->worker->upstream_ids, &u->by_id.node);
    ngx_rbtree_delete(&u->worker->upstream_urls, &u->by_url.node);

    if (u->dynamic) {
        ngx_queue_remove(&u->learned);
    }

    if (u->dialer) {
        ngx_queue_remove(&u->dialed);
        u->dialer = 0;
    }
}


/* out of the worker's list for good: closed (1001 "why"), no retry */
static void
ngx_http_amonitor_upstream_stop(
    ngx_http_amonitor_upstream_t *u, const char *why)
{
    ngx_http_amonitor_upstream_unlist(u);
    u->stopped = 1;

    if (u->reconnect.timer_set) {
        ngx_del_timer(&u->reconnect);
    }

    if (u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
        ngx_http_amonitor_conn_close_frame(
            &u->wc, AMON_WS_CLOSE_GOING_AWAY, why);
    }

    ngx_http_amonitor_upstream_fail(u);
}


static ngx_http_amonitor_upstream_t *
ngx_http_amonitor_upstream_create(ngx_http_amonitor_worker_t *w, ngx_str_t *id,
    ngx_str_t *norm, ngx_str_t *host_port, ngx_str_t *path, ngx_str_t *token,
    ngx_addr_t *addrs, ngx_uint_t naddrs)
{
    u_char                       *p;
    ngx_pool_t                   *pool;
    ngx_http_amonitor_upstream_t *u;

    pool = ngx_create_pool(1024, w->cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    u = ngx_pcalloc(pool, sizeof(ngx_http_amonitor_upstream_t));
    if (u == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    p = ngx_pnalloc(
        pool, id->len + norm->len + host_port->len + path->len + token->len);
    if (p == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    u->pool = pool;

    u->id.data = p;
    u->id.len = id->len;
    p = ngx_cpymem(p, id->data, id->len);

    u->norm.data = p;
    u->norm.len = norm->len;
    p = ngx_cpymem(p, norm->data, norm->len);

    u->host_port.data = p;
    u->host_port.len = host_port->len;
    p = ngx_cpymem(p, host_port->data, host_port->len);

    u->path.data = p;
    u->path.len = path->len;
    p = ngx_cpymem(p, path->data, path->len);

    u->token.data = p;
    u->token.len = token->len;
    if (token->len) {
        ngx_memcpy(p, token->data, token->len);
    }

    u->addrs = addrs;
    u->naddrs = naddrs;

    u->log = *w->cycle->log;
    u->log.handler = ngx_http_amonitor_upstream_log_error;
    u->log.data = u;
    u->log.action = "connecting to an amonitor SDK";

    u->worker = w;
    u->wc.data = u;
    u->wc.on_message = ngx_http_amonitor_upstream_message;
    u->wc.on_close = ngx_http_amonitor_upstream_on_close;
    u->wc.log_level = NGX_LOG_ERR;

    u->reconnect.handler = ngx_http_amonitor_upstream_reconnect_handler;
    u->reconnect.data = u;
    u->reconnect.log = &u->log;
    u->reconnect.cancelable = 1;

    u->backoff = w->amcf->reconnect_min;

    /* its memory only while a handshake runs (upstream_io.c) */
    u->hs = ngx_calloc_buf(pool);
    if (u->hs == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    ngx_queue_init(&u->waiting);
    ngx_queue_insert_tail(&w->upstreams, &u->queue);
    w->upstreams_gen++;
    u->by_id.str = u->id;
    u->by_id.node.key = amon_hash(u->id.data, u->id.len); /* target_find */
    ngx_rbtree_insert(&w->upstream_ids, &u->by_id.node);

    /*
     * A target's URL never changes: one learned again at another URL is
     * a new upstream.  Of equal URLs, the one inserted first stays first
     * in the tree's order, which target_find_url keeps.
     */
    u->by_url.str = u->norm;
    u->by_url.node.key = ngx_http_amonitor_hash(u->norm.data, u->norm.len);
    ngx_rbtree_insert(&w->upstream_urls, &u->by_url.node);

    return u;
}


/* a target learned at run time, dialed now ("wu" holds an IP literal) */
ngx_http_amonitor_upstream_t *
ngx_http_amonitor_upstream_add(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *wu)
{
    ngx_http_amonitor_upstream_t *u;

    u = ngx_http_amonitor_upstream_learned(w, id, wu);

    if (u != NULL) {
        ngx_http_amonitor_upstream_connect(u);
    }

    return u;
}


/* a target learned at run time, not dialed yet */
static ngx_http_amonitor_upstream_t *
ngx_http_amonitor_upstream_learned(
    ngx_http_amonitor_worker_t *w, ngx_str_t *id, amon_ws_url_t *wu)
{
    u_char                        norm[AMON_MAX_URL_LEN + 16], *sa, *name;
    ngx_str_t                     n, hp, path, token, host;
    amon_str_t                    hn;
    ngx_addr_t                   *addr, parsed;
    ngx_pool_t                   *tmp;
    ngx_http_amonitor_upstream_t *u;

    hn = amon_ws_url_hostname(wu);
    host.data = (u_char *) hn.data;
    host.len = hn.len;

    n.data = norm;
    n.len = amon_ws_url_normalize(wu, norm, sizeof(norm));
    if (n.len == 0) {
        return NULL;
    }

    hp.data = (u_char *) wu->host_port.data;
    hp.len = wu->host_port.len;
    path.data = (u_char *) wu->path.data;
    path.len = wu->path.len;
    ngx_str_null(&token);

    if (host.len == 9
        && ngx_strncasecmp(host.data, (u_char *) "localhost", 9) == 0) {
        ngx_str_set(&host, "127.0.0.1");
    }

    /*
     * Numeric only: a worker never does blocking DNS.  Parsed in a pool of
     * its own, so a dial that fails leaves nothing behind.
     */
    tmp = ngx_create_pool(512, w->cycle->log);
    if (tmp == NULL) {
        return NULL;
    }

    if (ngx_parse_addr(tmp, &parsed, host.data, host.len) != NGX_OK) {
        ngx_destroy_pool(tmp);
        return NULL;
    }

    u = ngx_http_amonitor_upstream_create(
        w, id, &n, &hp, &path, &token, NULL, 0);
    if (u == NULL) {
        ngx_destroy_pool(tmp);
        return NULL;
    }

    addr = ngx_pcalloc(u->pool, sizeof(ngx_addr_t));
    sa = ngx_pnalloc(u->pool, parsed.socklen);
    name = ngx_pnalloc(u->pool, NGX_SOCKADDR_STRLEN);

    if (addr == NULL || sa == NULL || name == NULL) {
        ngx_destroy_pool(tmp);
        ngx_http_amonitor_upstream_unlist(u);
        ngx_destroy_pool(u->pool);
        return NULL;
    }

    ngx_memcpy(sa, parsed.sockaddr, parsed.socklen);
    ngx_destroy_pool(tmp);

    addr->sockaddr = (struct sockaddr *) sa;
    addr->socklen = parsed.socklen;
    ngx_inet_set_port(addr->sockaddr, (in_port_t) wu->port);

    addr->name.data = name;
    addr->name.len = ngx_sock_ntop(
        addr->sockaddr, addr->socklen, name, NGX_SOCKADDR_STRLEN, 1);

    u->addrs = addr;
    u->naddrs = 1;

    if (ngx_http_amonitor_upstream_tls_name(u, wu) != NGX_OK) {
        ngx_http_amonitor_upstream_unlist(u);
        ngx_destroy_pool(u->pool);
        return NULL;
    }

    u->dynamic = 1;
    w->ndynamic++;
    ngx_queue_insert_tail(&w->learned, &u->learned);

    ngx_log_error(NGX_LOG_INFO, &u->log, 0, "amonitor: new target \"%V\" at %V",
        &u->id, &u->norm);

    return u;
}


/* wss://: the URL's host, as a C string, to verify and send in SNI */
static ngx_int_t
ngx_http_amonitor_upstream_tls_name(
    ngx_http_amonitor_upstream_t *u, amon_ws_url_t *wu)
{
    amon_str_t host;

    u->tls = wu->tls;

    if (!wu->tls) {
        return NGX_OK;
    }

    if (u->worker->amcf->ssl == NULL) {
        /* no wss:// in the configuration, so no SSL context */
        return NGX_ERROR;
    }

    host = amon_ws_url_hostname(wu);

    u->host.data = ngx_pnalloc(u->pool, host.len + 1);
    if (u->host.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(u->host.data, (u_char *) host.data, host.len + 1);
    u->host.len = host.len;

    return NGX_OK;
}


/* connect now instead of when the backoff delay ends */
void
ngx_http_amonitor_upstream_kick(ngx_http_amonitor_upstream_t *u)
{
    if (u->state != NGX_HTTP_AMONITOR_UP_BACKOFF || u->stopped) {
        return;
    }

    if (u->reconnect.timer_set) {
        ngx_del_timer(&u->reconnect);
    }

    ngx_http_amonitor_upstream_connect(u);
}


/*
 * Forget a learned target in this worker: its actions get their answer,
 * its connection is closed, its memory freed.  Never called from inside
 * its own handlers (the router checks).
 */
void
ngx_http_amonitor_upstream_drop(
    ngx_http_amonitor_upstream_t *u, const char *reason)
{
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    ngx_log_error(NGX_LOG_INFO, &u->log, 0,
        "amonitor: learned target \"%V\" at %V forgotten: %s", &u->id, &u->norm,
        reason);

    ngx_http_amonitor_action_upstream_forgotten(u);
    ngx_http_amonitor_upstream_stop(u, "target forgotten");
    ngx_http_amonitor_action_upstream_gone(u);
    ngx_http_amonitor_cluster_forget(u);
    ngx_http_amonitor_subscribe_upstream_gone(w, u);

    if (u->dynamic) {
        w->ndynamic--;
        ngx_http_amonitor_store_target_forget(w->store, u->tstate);
    }

    ngx_destroy_pool(u->pool);
}


/*
 * The configured targets (and the learned ones a worker finds reading
 * the registry whole) are dialed NGX_HTTP_AMONITOR_FIRST_DIALS at a
 * time, one batch per pass of the event loop: connections made by one
 * batch are answered before the next, and each dial's connect timeout
 * starts from the time of its own pass.  One loop over 10,000 targets
 * took longer than amonitor_connect_timeout on a busy machine, with
 * nginx's cached time standing still, and most of them timed out unread.
 */
static void
ngx_http_amonitor_upstream_first_dials(ngx_event_t *ev)
{
    ngx_uint_t                    n;
    ngx_queue_t                  *q;
    ngx_http_amonitor_worker_t   *w;
    ngx_http_amonitor_upstream_t *u;

    w = ev->data;
    n = 0;

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (!u->first_dial) {
            continue;
        }

        if (n == NGX_HTTP_AMONITOR_FIRST_DIALS) {
            /* more: in the next pass */
            ngx_add_timer(ev, 1);
            return;
        }

        u->first_dial = 0;
        n++;

        ngx_http_amonitor_upstream_connect(u);
    }
}


/*
 * amonitor_cluster: another worker holds the target's lease now.  The
 * connection closes; the next attempt waits for a lease of its own.
 */
void
ngx_http_amonitor_upstream_hangup(ngx_http_amonitor_upstream_t *u)
{
    if (u->state == NGX_HTTP_AMONITOR_UP_OPEN) {
        ngx_http_amonitor_conn_close_frame(&u->wc, AMON_WS_CLOSE_GOING_AWAY,
            "another agent worker took over this connection");

    } else if (u->state != NGX_HTTP_AMONITOR_UP_CONNECTING
        && u->state != NGX_HTTP_AMONITOR_UP_HANDSHAKE) {
        return;
    }

    ngx_http_amonitor_upstream_fail(u);
}


/*
 * Once a second: say which learned targets this worker has open (each
 * every eighth of amonitor_learned_expire), give up on dials that never
 * succeeded, forget what nobody had open for
 * amonitor_learned_expire, then follow the registry: drop what left it,
 * connect to what other workers learned (if the allow patterns of this
 * configuration still allow it).  Only the learned targets are walked
 * (never the configured ones), each touch finds its entry through the
 * zone's index, and the registry's change log is read only when its
 * sequence number moved, only for what changed: an idle worker reads
 * one counter.
 */
static void
ngx_http_amonitor_upstream_reconcile(ngx_event_t *ev)
{
    ngx_http_amonitor_worker_t *w = ev->data;

    ngx_int_t                      rc;
    ngx_uint_t                     synced;
    ngx_msec_t                     every;
    ngx_pool_t                    *pool;
    ngx_array_t                    out;
    ngx_queue_t                   *q, *next;
    ngx_http_amonitor_upstream_t  *u;
    ngx_http_amonitor_main_conf_t *amcf;

    ngx_http_amonitor_noack_say_quiet(w);

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    amcf = w->amcf;

    every = ngx_max(amcf->learned_expire / 8, NGX_HTTP_AMONITOR_RECONCILE);
    every = ngx_min(every, 30 * NGX_HTTP_AMONITOR_RECONCILE);

    for (q = ngx_queue_head(&w->learned); q != ngx_queue_sentinel(&w->learned);
         q = next) {
        next = ngx_queue_next(q);
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, learned);

        if (u->state == NGX_HTTP_AMONITOR_UP_OPEN || u->remote_up) {
            /*
             * Open here, or (amonitor_cluster) at its owner elsewhere: the
             * first time at once, then every eighth of
             * amonitor_learned_expire (1 s to 30 s).
             */
            if (u->touched == 0 || ngx_current_msec - u->touched >= every) {
                w->store->touch(w->store, &u->id);
                u->touched = ngx_current_msec ? ngx_current_msec : 1;
            }

        } else if (!u->registered && !u->held && u->opened == 0
            && u->failures >= amcf->dial_attempts) {

            if (w->store->forget(w->store, &u->id, &u->norm, 1) == NGX_OK) {
                ngx_http_amonitor_upstream_drop(u,
                    "dialed on demand, never connected "
                    "(amonitor_dial_attempts)");
                continue;
            }

            /*
             * Another worker has had it open: the target exists, and this
             * worker dials it with the backoff as any other, until the
             * registry lets it go (amonitor_learned_expire).
             */
            u->held = 1;

            if (u->stopped) {
                u->stopped = 0;
                ngx_http_amonitor_upstream_kick(u);
            }
        }
    }

    (void) w->store->expire(w->store, amcf->learned_expire);

    if (!w->registry_synced
        || w->store->generation(w->store) != w->registry_seq) {
        /* only when there is work: what changed, copied for the moment */
        pool = ngx_create_pool(16384, ev->log);

        if (pool != NULL) {
            rc = ngx_array_init(
                &out, pool, 64, sizeof(ngx_http_amonitor_reg_change_t));

            synced = w->registry_synced;

            if (rc == NGX_OK) {
                rc = w->store->changes(
                    w->store, &w->registry_seq, &w->registry_synced, &out);
            }

            if (rc == NGX_DONE && synced) {
                ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                    "amonitor: the registry of learned targets changed more "
                    "than its change log holds since this worker last "
                    "read it: read whole, %ui entries",
                    out.nelts);
            }

            if (rc == NGX_OK || rc == NGX_DONE) {
                ngx_http_amonitor_upstream_follow(
                    w, out.elts, out.nelts, rc == NGX_DONE);
            }

            ngx_destroy_pool(pool);
        }
    }

    ngx_add_timer(ev, NGX_HTTP_AMONITOR_RECONCILE);
}


/*
 * The registry changed: "ch" holds the entries now under the ids that
 * changed, or ("all") every entry, and then a learned target not among
 * them left the registry.  Read whole, the registry may hold thousands
 * this worker has not dialed yet (a new worker after a reload): they are
 * dialed NGX_HTTP_AMONITOR_FIRST_DIALS at a time, as configured targets
 * are at start.
 */
static void
ngx_http_amonitor_upstream_follow(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_reg_change_t *ch, ngx_uint_t n, ngx_uint_t all)
{
    ngx_uint_t                    i, later;
    ngx_queue_t                  *q, *next;
    ngx_http_amonitor_upstream_t *u;

    if (all) {
        for (q = ngx_queue_head(&w->learned);
             q != ngx_queue_sentinel(&w->learned); q = ngx_queue_next(q)) {
            u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, learned);
            u->listed = 0;
        }
    }

    later = 0;

    for (i = 0; i < n; i++) {
        later += ngx_http_amonitor_upstream_follow_one(w, &ch[i], all);
    }

    if (!all) {
        return;
    }

    if (later && !w->first_dials.timer_set) {
        ngx_http_amonitor_upstream_first_dials(&w->first_dials);
    }

    for (q = ngx_queue_head(&w->learned); q != ngx_queue_sentinel(&w->learned);
         q = next) {
        next = ngx_queue_next(q);
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, learned);

        if (!u->listed) {
            ngx_http_amonitor_upstream_drop(u, "no longer in the registry");
        }
    }
}


/*
 * Make this worker's target "ch->id" what the registry says it is; 1: a
 * new one, to dial in the first dials' passes ("later").
 */
static ngx_uint_t
ngx_http_amonitor_upstream_follow_one(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_reg_change_t *ch, ngx_uint_t later)
{
    amon_ws_url_t                 wu;
    ngx_http_amonitor_upstream_t *u;

    u = ngx_http_amonitor_target_find(w, &ch->id);

    if (u != NULL && !u->dynamic) {
        /* configured: it keeps its id */
        return 0;
    }

    if (u != NULL
        && ngx_memn2cmp(u->norm.data, ch->url.data, u->norm.len, ch->url.len)
            != 0) {
        /* gone, or learned again at another URL: a new upstream */
        ngx_http_amonitor_upstream_drop(u, "no longer in the registry");
        u = NULL;
    }

    if (u == NULL && ch->url.len) {
        if (amon_ws_url_parse(ch->url.data, ch->url.len, &wu) != AMON_OK
            || !ngx_http_amonitor_target_allowed(w, &wu)) {
            /* a reload removed the pattern that allowed it */
            ngx_log_error(NGX_LOG_INFO, w->cycle->log, 0,
                "amonitor: learned target \"%V\" at %V forgotten: not "
                "allowed by amonitor_allow_url any more",
                &ch->id, &ch->url);
            (void) w->store->forget(w->store, &ch->id, &ch->url, 0);
            return 0;
        }

        u = later ? ngx_http_amonitor_upstream_learned(w, &ch->id, &wu)
                  : ngx_http_amonitor_upstream_add(w, &ch->id, &wu);
        if (u == NULL) {
            ngx_log_error(NGX_LOG_ERR, w->cycle->log, 0,
                "amonitor: cannot add learned target \"%V\"", &ch->id);
            return 0;
        }

        u->registered = (ch->kind == NGX_HTTP_AMONITOR_REGISTERED);
        u->listed = 1;
        u->first_dial = later;

        return later;
    }

    if (u != NULL) {
        u->registered = (ch->kind == NGX_HTTP_AMONITOR_REGISTERED);
        u->listed = 1;
    }

    return 0;
}
