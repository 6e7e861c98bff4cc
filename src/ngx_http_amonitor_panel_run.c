/*
 * Copyright (C) AMonitor authors
 *
 * A panel after its 101: the module takes the connection over from the
 * HTTP request (the request, its pool and the header buffers are freed,
 * as nginx does for an idle keepalive connection), then relays its
 * messages until it closes.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_subscribe.h"


/* a panel: a WebSocket connection taken over from its request */
typedef struct {
    ngx_http_amonitor_conn_t    wc;
    ngx_http_amonitor_worker_t *worker;
    unsigned                    in_handler : 1;
    unsigned                    closing : 1; /* close when the handler ends */
    unsigned                    lingering : 1;
    unsigned                    draining : 1; /* half-closed, reads only */
    unsigned                    finalized : 1;
    unsigned                    at_exit : 1; /* the worker ends now */
    unsigned                    heard : 1; /* it sent, closing */
    int                         unsent; /* in its socket, last looked */
    uint64_t                    sent; /* wc.sent_bytes, last looked */
    ngx_msec_t                  linger_at; /* when the linger began */
} ngx_http_amonitor_panel_t;


/* what the handshake decided, kept in c->pool until the takeover */
typedef struct {
    ngx_http_amonitor_worker_t *worker;
    ngx_uint_t                  encoding;
    ngx_str_t                  *targets; /* one ngx_alloc() block */
    ngx_uint_t                  ntargets;
    ngx_flag_t                  snapshot;
    void                       *rights; /* its token's (rights.c) */
} ngx_http_amonitor_pending_t;


static void ngx_http_amonitor_panel_takeover(ngx_event_t *ev);
static ngx_http_amonitor_panel_t *ngx_http_amonitor_panel_open(
    ngx_connection_t *c, ngx_http_amonitor_pending_t *pend);
static void ngx_http_amonitor_panel_free_buffers(
    ngx_connection_t *c, ngx_http_connection_t *hc);
static void ngx_http_amonitor_panel_read(ngx_event_t *rev);
static void ngx_http_amonitor_panel_write(ngx_event_t *wev);
static void ngx_http_amonitor_panel_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
static void ngx_http_amonitor_panel_on_close(ngx_http_amonitor_conn_t *wc);
static void ngx_http_amonitor_panel_linger(
    ngx_http_amonitor_panel_t *p, ngx_uint_t hold_exit);
static void       ngx_http_amonitor_panel_linger_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_amonitor_panel_reads(ngx_http_amonitor_panel_t *p);
static ngx_int_t  ngx_http_amonitor_panel_half_close(
     ngx_http_amonitor_panel_t *p);
static ngx_int_t ngx_http_amonitor_panel_shut_wr(ngx_http_amonitor_conn_t *wc);
static void      ngx_http_amonitor_panel_close(ngx_http_amonitor_panel_t *p);
static void      ngx_http_amonitor_panel_release(ngx_http_amonitor_panel_t *p);


/*
 * After the 101: what the panel will be is kept in the connection's pool,
 * with the rights of its token (checked once, by panel.c, before the
 * upgrade), and the connection is taken over from the request once nginx
 * is done with it (a posted event).  The panel's own memory is allocated
 * only then, after the request's is freed, so that it fills the space the
 * request leaves rather than pinning it.
 */
ngx_int_t
ngx_http_amonitor_panel_start(ngx_http_request_t *r,
    ngx_http_amonitor_main_conf_t *amcf, ngx_uint_t encoding,
    ngx_array_t *targets, ngx_http_amonitor_rights_t *rights)
{
    u_char                       *d;
    size_t                        size;
    ngx_str_t                    *t;
    ngx_uint_t                    i;
    ngx_connection_t             *c;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_amonitor_pending_t  *pend;
    ngx_http_amonitor_loc_conf_t *alcf;

    c = r->connection;

    pend = ngx_pcalloc(c->pool, sizeof(ngx_http_amonitor_pending_t));
    if (pend == NULL) {
        return NGX_ERROR;
    }

    t = targets->elts;
    size = targets->nelts * sizeof(ngx_str_t);

    for (i = 0; i < targets->nelts; i++) {
        size += t[i].len;
    }

    pend->targets = ngx_alloc(size + 1, c->log);
    if (pend->targets == NULL) {
        return NGX_ERROR;
    }

    d = (u_char *) &pend->targets[targets->nelts];

    for (i = 0; i < targets->nelts; i++) {
        pend->targets[i].data = d;
        pend->targets[i].len = t[i].len;
        d = ngx_cpymem(d, t[i].data, t[i].len);
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_amonitor_module);

    pend->worker = amcf->worker;
    pend->encoding = encoding;
    pend->ntargets = targets->nelts;
    pend->snapshot = alcf->panel_snapshot;
    pend->rights = rights;

    ngx_http_set_ctx(r, pend, ngx_http_amonitor_module);

    /* small acks must not wait for the peer's delayed ACK (Nagle) */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_free(pend->targets);
        return NGX_ERROR;
    }

    c->idle = 1;

    /* nginx finishes the request first; then the panel takes over */
    c->read->handler = ngx_http_amonitor_panel_takeover;
    c->write->handler = ngx_http_amonitor_panel_takeover;

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * The first event after the 101: free the request (its access log line
 * is written now, with the 101), open the panel, feed it the frames that
 * came with the handshake, free the buffers that held them, then handle
 * the event.  An idle panel keeps its connection, the connection's small
 * pool and the panel structure.
 */
static void
ngx_http_amonitor_panel_takeover(ngx_event_t *ev)
{
    ngx_buf_t                   *b;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_connection_t       *hc;
    ngx_http_amonitor_panel_t   *p;
    ngx_http_amonitor_pending_t *pend;

    c = ev->data;
    r = c->data;

    pend = ngx_http_get_module_ctx(r, ngx_http_amonitor_module);

    if (pend->snapshot && !c->close
        && ngx_http_amonitor_fanout_snapshot_later(pend->worker)) {
        /* this pass built its share of snapshots: in the next one */
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    hc = r->http_connection;
    b = r->header_in;

    ngx_http_free_request(r, 0);
    c->destroyed = 0;

    p = ngx_http_amonitor_panel_open(c, pend);

    ngx_free(pend->targets);

    if (p == NULL) {
        ngx_http_close_connection(c);
        return;
    }

    p->in_handler = 1;

    if (b->last > b->pos) {
        (void) ngx_http_amonitor_conn_feed(&p->wc, b->pos, b->last - b->pos);
    }

    p->in_handler = 0;

    if (p->closing) {
        ngx_http_amonitor_panel_close(p);
        return;
    }

    ngx_http_amonitor_panel_free_buffers(c, hc);
    ngx_http_amonitor_frames_trim_soon(&p->worker->frames);

    if (ev->write) {
        ngx_http_amonitor_panel_write(ev);
        return;
    }

    ngx_http_amonitor_panel_read(ev);
}


/*
 * The panel on the connection: its subscription, its place among the
 * worker's panels, its snapshot (before any live frame), its pings.
 */
static ngx_http_amonitor_panel_t *
ngx_http_amonitor_panel_open(
    ngx_connection_t *c, ngx_http_amonitor_pending_t *pend)
{
    ngx_http_amonitor_panel_t  *p;
    ngx_http_amonitor_worker_t *w;

    w = pend->worker;

    /* on a cache line: the first 64 bytes are what fan-out reads */
    p = ngx_memalign(64, sizeof(ngx_http_amonitor_panel_t), c->log);
    if (p == NULL) {
        return NULL;
    }

    ngx_memzero(p, sizeof(ngx_http_amonitor_panel_t));

    p->worker = w;
    p->wc.id = ++w->panel_seq;
    p->wc.data = p;
    p->wc.on_message = ngx_http_amonitor_panel_message;
    p->wc.on_close = ngx_http_amonitor_panel_on_close;
    p->wc.log_level = NGX_LOG_INFO;

    if (ngx_http_amonitor_conn_init(&p->wc, c, &w->frames, 0) != NGX_OK) {
        ngx_free(p);
        return NULL;
    }

    p->wc.encoding = pend->encoding;
    p->wc.rights = pend->rights;

    if (ngx_http_amonitor_subscribe_set(
            w, &p->wc, pend->targets, pend->ntargets)
        != NGX_OK) {
        ngx_http_amonitor_subscribe_gone(w, &p->wc);
        ngx_http_amonitor_conn_free(&p->wc);
        ngx_free(p);
        return NULL;
    }

    ((ngx_http_amonitor_sub_t *) p->wc.sub)->snapshot = pend->snapshot;

    c->data = p;
    c->log->action = "relaying amonitor panel messages";
    c->read->handler = ngx_http_amonitor_panel_read;
    c->write->handler = ngx_http_amonitor_panel_write;

    ngx_queue_insert_tail(&w->panels, &p->wc.queue);
    (void) ngx_atomic_fetch_add(&w->counters->panels, 1);

    if (pend->snapshot && !c->close) {
        /*
         * what is known now comes before any live frame; not to a panel
         * opened as the worker shuts down (it is closed with 1012 at
         * once, and the next worker tells it all)
         */
        ngx_http_amonitor_fanout_snapshot(w, &p->wc);
    }

    ngx_log_debug1(
        NGX_LOG_DEBUG_HTTP, c->log, 0, "amonitor panel #%ui open", p->wc.id);

    ngx_http_amonitor_conn_start_ping(&p->wc, w->amcf->ping);

    return p;
}

static void
ngx_http_amonitor_panel_free_buffers(
    ngx_connection_t *c, ngx_http_connection_t *hc)
{
    ngx_chain_t *cl, *ln;

    if (c->buffer && ngx_pfree(c->pool, c->buffer->start) == NGX_OK) {
        c->buffer = NULL;
    }

    for (cl = hc->free; cl; /* void */) {
        ln = cl;
        cl = cl->next;
        ngx_pfree(c->pool, ln->buf->start);
        ngx_free_chain(c->pool, ln);
    }

    hc->free = NULL;

    for (cl = hc->busy; cl; /* void */) {
        ln = cl;
        cl = cl->next;
        ngx_pfree(c->pool, ln->buf->start);
        ngx_free_chain(c->pool, ln);
    }

    hc->busy = NULL;
    hc->nbusy = 0;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        ngx_ssl_free_buffer(c);
    }
#endif
}


static void
ngx_http_amonitor_panel_read(ngx_event_t *rev)
{
    int                        unread;
    ngx_connection_t          *c;
    ngx_http_amonitor_panel_t *p;

    c = rev->data;
    p = c->data;

    p->in_handler = 1;

    if (c->close && !p->lingering) {
        /* graceful shutdown of the worker: 1012, see panel_close */
        p->closing = 1;

    } else if (c->close && c->error) {
        /*
         * worker_shutdown_timeout: nginx closes what is left now.  A
         * panel still closing (its close frame queued, or waiting for
         * its answer) is closed too: its timer holds the exit, and
         * nginx's limit comes before ours (CLOSE_TIMEOUT).
         */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
            "amonitor panel #%ui closed at worker_shutdown_timeout", p->wc.id);

        p->closing = 1;

    } else {
        if (p->lingering && !p->heard) {
            /* closing: is it still sending (panel_reads) */
            p->heard = (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0);
        }

        ngx_http_amonitor_conn_read(&p->wc);
    }

    p->in_handler = 0;

    if (p->closing) {
        ngx_http_amonitor_panel_close(p);
    }
}


static void
ngx_http_amonitor_panel_write(ngx_event_t *wev)
{
    ngx_connection_t          *c;
    ngx_http_amonitor_panel_t *p;

    c = wev->data;
    p = c->data;

    p->in_handler = 1;

    if (ngx_http_amonitor_conn_flush(&p->wc) != NGX_OK
        || (p->lingering && p->wc.q_count == 0)) {
        ngx_http_amonitor_panel_on_close(&p->wc);
    }

    p->in_handler = 0;

    if (p->closing) {
        ngx_http_amonitor_panel_close(p);
    }
}


static void
ngx_http_amonitor_panel_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_http_amonitor_panel_t *p = wc->data;

    ngx_http_amonitor_router_panel_message(p->worker, wc, opcode, data, len);
}


/*
 * End the panel.  Inside its own handlers the connection is closed when
 * the handler ends; from elsewhere (timers, fan-out) at once.
 */
static void
ngx_http_amonitor_panel_on_close(ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_panel_t *p = wc->data;

    ngx_connection_t *c;

    if (p->finalized) {
        return;
    }

    c = wc->connection;

    if (!p->lingering && wc->close_sent && wc->q_count && !c->error
        && !c->close) {
        /*
         * Our close frame is still queued: keep the socket a little, so
         * that a peer that reads again learns why (1008, 1009, ...).
         */
        ngx_http_amonitor_panel_linger(p, 0);
        return;
    }

    if (p->in_handler) {
        p->closing = 1;
        return;
    }

    ngx_http_amonitor_panel_close(p);
}


/* keep the socket until the close frame is out, at most CLOSE_TIMEOUT */
static void
ngx_http_amonitor_panel_linger(
    ngx_http_amonitor_panel_t *p, ngx_uint_t hold_exit)
{
    ngx_http_amonitor_conn_t *wc;

    wc = &p->wc;
    p->lingering = 1;
    p->closing = 0;

    /* for the worker it is gone already; its exit still closes it */
    ngx_queue_remove(&wc->queue);
    ngx_queue_insert_tail(&p->worker->lingering, &wc->queue);
    (void) ngx_atomic_fetch_add(&p->worker->counters->panels, -1);

    if (wc->ping.timer_set) {
        ngx_del_timer(&wc->ping);
    }

    p->linger_at = ngx_current_msec;
    (void) ngx_http_amonitor_panel_reads(p);

    wc->ping.handler = ngx_http_amonitor_panel_linger_handler;
    wc->ping.cancelable = !hold_exit;
    ngx_add_timer(&wc->ping, NGX_HTTP_AMONITOR_CLOSE_TIMEOUT);
}


/*
 * CLOSE_TIMEOUT passed: a panel that read meanwhile (the agent wrote
 * more to its socket, or the socket holds less) is given as long again,
 * up to CLOSE_MAX in all, so that one slowed down (a busy machine, a big
 * backlog) still reads up to the close frame; one that read nothing is
 * closed.  Once half-closed, all of ours may be in the panel's socket
 * and the panel still reading it: one that still sends is alive and is
 * waited for too (a close() now would answer its next bytes with a
 * reset, which drops what it has not read).
 */
static void
ngx_http_amonitor_panel_linger_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_conn_t  *wc = ev->data;
    ngx_http_amonitor_panel_t *p = wc->data;

    if (!p->finalized && ngx_http_amonitor_panel_reads(p)
        && ngx_current_msec - p->linger_at < NGX_HTTP_AMONITOR_CLOSE_MAX) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
            "amonitor panel #%ui still reads: its close waits", wc->id);

        ngx_add_timer(&wc->ping, NGX_HTTP_AMONITOR_CLOSE_TIMEOUT);
        return;
    }

    ngx_http_amonitor_panel_on_close(wc);
}


/* did the panel read since the last look (which this one replaces) */
static ngx_uint_t
ngx_http_amonitor_panel_reads(ngx_http_amonitor_panel_t *p)
{
    int        unsent;
    ngx_uint_t reads;

    unsent = 0;

#if defined(TIOCOUTQ)
    if (ioctl(p->wc.connection->fd, TIOCOUTQ, &unsent) == -1) {
        unsent = 0;
    }
#endif

    /* what it read, while some of ours is still to be read */
    reads = (p->wc.sent_bytes != p->sent || unsent < p->unsent)
        && (unsent > 0 || p->wc.q_count > 0);

    reads = reads || (p->draining && p->heard);

    p->sent = p->wc.sent_bytes;
    p->unsent = unsent;
    p->heard = 0;

    return reads;
}


static void
ngx_http_amonitor_panel_close(ngx_http_amonitor_panel_t *p)
{
    ngx_connection_t *c;

    if (p->finalized) {
        return;
    }

    c = p->wc.connection;

    ngx_log_debug1(
        NGX_LOG_DEBUG_HTTP, c->log, 0, "amonitor panel #%ui closed", p->wc.id);

    if (!p->wc.close_sent && !c->error) {
        /*
         * worker shutdown or reload: a code of its own (not the 1001 of a
         * ping timeout), so that a panel knows to reconnect at once
         */
        ngx_http_amonitor_conn_close_frame(&p->wc, AMON_WS_CLOSE_RESTART,
            "agent reloading or stopping: reconnect");

        if (c->close && p->wc.q_count && !c->error && !p->lingering
            && !p->at_exit) {
            /*
             * A panel that is behind would get the end of a frame and no
             * close frame (1006): the exiting worker waits for it a
             * little (a timer that holds the exit, at most
             * NGX_HTTP_AMONITOR_CLOSE_TIMEOUT), as for other closes.
             */
            ngx_http_amonitor_panel_linger(p, 1);
            return;
        }
    }

    if (!p->draining && ngx_http_amonitor_panel_half_close(p) == NGX_OK) {
        return;
    }

    ngx_http_amonitor_panel_release(p);

    ngx_http_close_connection(c);
    ngx_free(p);
}


/*
 * We closed: our close frame is in the socket, but perhaps not out yet,
 * and the peer may still be sending.  A close() now would make the kernel
 * answer the peer's next bytes with a reset that drops what is unsent,
 * and many clients drop what they have not read on a failed write: the
 * panel would see the end of the connection without a close frame (1006).
 * So, as RFC 6455 7.1.1 has it, the TCP connection ends after the close
 * frame: the kernel sends the rest and a FIN (shutdown), and what the
 * peer sends is read and dropped until it closes, at most CLOSE_TIMEOUT
 * (a timer that holds a worker's exit).  Not needed when the peer has
 * ended its side or sent its close frame (it sends nothing more then).
 * "Nothing in flight" is no reason to close at once: the close frame can
 * be out of our socket and still unread in the panel's.
 *
 * TLS has no half-close: a close_notify or a FIN ends a TLS client's
 * writing too, and some drop what they have not read on the next failed
 * write (Python's asyncio), the close frame among it.  So over TLS the
 * socket stays open and the worker waits, in every case, for the peer's
 * close frame (the session drops its other frames), as RFC 6455 7.1.1
 * orders it: then nginx's close_notify and close() find nothing more in
 * flight.
 */
static ngx_int_t
ngx_http_amonitor_panel_half_close(ngx_http_amonitor_panel_t *p)
{
    ngx_uint_t                tls;
    ngx_connection_t         *c;
    ngx_http_amonitor_conn_t *wc;

    wc = &p->wc;
    c = wc->connection;

    if (!wc->close_sent || wc->close_received || wc->q_count || c->error
        || c->read->eof || p->at_exit) {
        return NGX_DECLINED;
    }

#if (NGX_HTTP_SSL)
    tls = (c->ssl != NULL);
#else
    tls = 0;
#endif

    if (tls) {
        /*
         * no half-close in TLS: the socket stays open (above); nothing of
         * ours waits in nginx's SSL buffer (conn_tls.c writes records
         * itself, and q_count counts what an unfinished write holds)
         */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
            "amonitor panel #%ui awaits the close frame", wc->id);

    } else if (ngx_http_amonitor_panel_shut_wr(wc) != NGX_OK) {
        return NGX_DECLINED;
    }

    p->draining = 1;
    p->closing = 0;
    c->write->handler = ngx_http_empty_handler;

    if (!p->lingering) {
        ngx_http_amonitor_panel_linger(p, 1);

    } else {
        /* what is left of the wait that began with the close frame */
        wc->ping.cancelable = 0;
    }

    /* what is already in the socket: read (and dropped) now */
    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_OK;
}


/*
 * The plain TCP side of panel_half_close: the rest and a FIN go out.
 * Also when nothing seems in flight: a close frame already out of our
 * socket may sit unread in the panel's, and a panel that sends once more
 * would be answered with a reset (a client that drops what it has not
 * read on a failed write then loses the close frame and what came before
 * it).  NGX_DECLINED when the socket refuses the shutdown.
 */
static ngx_int_t
ngx_http_amonitor_panel_shut_wr(ngx_http_amonitor_conn_t *wc)
{
    ngx_connection_t *c;

    c = wc->connection;

    if (shutdown(c->fd, SHUT_WR) == -1) {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
            "amonitor: shutdown() of panel #%ui failed", wc->id);
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
        "amonitor panel #%ui half-closed", wc->id);

    return NGX_OK;
}


/* out of the worker's lists, its actions and queries told, freed */
static void
ngx_http_amonitor_panel_release(ngx_http_amonitor_panel_t *p)
{
    p->finalized = 1;

    ngx_queue_remove(&p->wc.queue);

    if (!p->lingering) {
        (void) ngx_atomic_fetch_add(&p->worker->counters->panels, -1);
    }

    ngx_http_amonitor_router_panel_gone(p->worker, &p->wc);
    ngx_http_amonitor_conn_free(&p->wc);
}


/*
 * The worker ends: its panels, and those still closing (their close frame
 * not out yet, or waiting for the panel's answer), which nginx would
 * otherwise find open at the exit of a worker that was shutting down
 * ("open socket left", when a stop follows a reload within the wait).
 */
void
ngx_http_amonitor_panel_close_all(ngx_http_amonitor_worker_t *w)
{
    ngx_queue_t               *q, *list;
    ngx_uint_t                 i;
    ngx_http_amonitor_conn_t  *wc;
    ngx_http_amonitor_panel_t *p;

    for (i = 0; i < 2; i++) {
        list = (i == 0) ? &w->panels : &w->lingering;

        while (!ngx_queue_empty(list)) {
            q = ngx_queue_head(list);
            wc = ngx_queue_data(q, ngx_http_amonitor_conn_t, queue);
            p = wc->data;
            p->at_exit = 1;
            ngx_http_amonitor_panel_close(p);
        }
    }
}
