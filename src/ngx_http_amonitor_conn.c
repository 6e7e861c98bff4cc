/*
 * Copyright (C) AMonitor authors
 *
 * One WebSocket connection, panel or upstream: reading into the worker's
 * buffer and decoding with the core's session layer (the rules the SDK, the
 * CLI and the load generator follow too), a bounded send queue of shared
 * frames flushed with one send_chain call (over TLS: one record,
 * conn_tls.c), ping and close.  The frames
 * themselves, cached per worker, come from frames.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor_conn.h"

#include "amon_ws_session.h"


static void      ngx_http_amonitor_conn_ping_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_amonitor_conn_process(ngx_http_amonitor_conn_t *wc);
static void      ngx_http_amonitor_conn_mask(
         void *data, unsigned char *key, size_t len);
static ngx_int_t ngx_http_amonitor_conn_send_bytes(
    ngx_http_amonitor_conn_t *wc, const u_char *data, size_t len);
static void ngx_http_amonitor_conn_closing(
    ngx_http_amonitor_conn_t *wc, const u_char *data, size_t len);
static void      ngx_http_amonitor_conn_discard(ngx_http_amonitor_conn_t *wc);
static ngx_int_t ngx_http_amonitor_conn_send_one(ngx_http_amonitor_conn_t *wc);
static void ngx_http_amonitor_conn_sent(ngx_http_amonitor_conn_t *wc, size_t n);
static ngx_int_t ngx_http_amonitor_conn_grow(ngx_http_amonitor_conn_t *wc);


ngx_int_t
ngx_http_amonitor_conn_init(ngx_http_amonitor_conn_t *wc, ngx_connection_t *c,
    ngx_http_amonitor_frames_t *f, ngx_uint_t client)
{
    wc->connection = c;
    wc->frames = f;
    wc->wev = c->write;
    wc->fd = c->fd;
    wc->client = client;

#if (NGX_SSL)
    /*
     * A panel over "listen ... ssl": nginx's SSL buffer would hold frames
     * until 16k gathered (nothing here marks a flush).  conn_tls.c gathers
     * the frames of a pass into one record itself and writes it at once,
     * so the queue counts sent only what is in the socket.
     */
    if (c->ssl) {
        c->ssl->buffer = 0;
    }

    wc->tls = (c->ssl != NULL);
#endif

    /*
     * Input is decoded as soon as it is read, so every connection of the
     * worker reads into the worker's one buffer (frames->rbuf); the send
     * queue starts
     * small and grows only for a connection that needs it.
     */
    wc->q_limit = f->queue;
    wc->q_size = f->queue + NGX_HTTP_AMONITOR_RESERVED_Q;

    wc->rbuf_pos = 0;
    wc->rbuf_last = 0;
    wc->q_head = 0;
    wc->q_count = 0;
    wc->queued_bytes = 0;
    wc->sent_bytes = 0;
    wc->tls_held = 0;
    wc->pass = 0;
    wc->open = 1;
    wc->close_sent = 0;
    wc->close_received = 0;
    wc->awaiting_pong = 0;
    wc->closed = 0;
    wc->failed = 0;
    wc->last_rx = ngx_current_msec;

    amon_ws_session_init(&wc->session, client, f->max_message, f->allocator,
        ngx_http_amonitor_conn_mask, NULL);

    /* every text message is decoded as strict JSON: conn_decode() */
    amon_ws_session_utf8_later(&wc->session);
    wc->text_unchecked = 0;
    wc->text_bad = 0;

    wc->ping.handler = ngx_http_amonitor_conn_ping_handler;
    wc->ping.data = wc;
    wc->ping.log = c->log;
    wc->ping.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_amonitor_conn_start_ping(
    ngx_http_amonitor_conn_t *wc, ngx_msec_t interval)
{
    if (interval) {
        ngx_add_timer(&wc->ping, interval);
    }
}


/* release everything the connection holds; the socket is the owner's */
void
ngx_http_amonitor_conn_free(ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_qitem_t *qi;

    while (wc->q_count) {
        qi = &wc->q[wc->q_head];
        ngx_http_amonitor_msg_release(wc->frames, qi->msg);
        wc->q_head = (wc->q_head + 1) % wc->q_cap;
        wc->q_count--;
    }

    if (wc->q) {
        ngx_free(wc->q);
        wc->q = NULL;
        wc->q_cap = 0;
        wc->q_head = 0;
    }

    if (wc->ping.timer_set) {
        ngx_del_timer(&wc->ping);
    }

    if (wc->connection && wc->connection->write->posted) {
        ngx_delete_posted_event(wc->connection->write);
    }

    amon_ws_session_free(&wc->session);

    wc->open = 0;
    wc->closed = 1;
}


void
ngx_http_amonitor_conn_read(ngx_http_amonitor_conn_t *wc)
{
    ssize_t           n;
    ngx_uint_t        reads;
    ngx_connection_t *c;

    c = wc->connection;

    for (reads = 0; /* void */; reads++) {

        if (reads == NGX_HTTP_AMONITOR_READS) {
            /* let writes and other connections run, then go on */
            ngx_post_event(c->read, &ngx_posted_events);
            return;
        }

        n = c->recv(c, wc->frames->rbuf, wc->frames->rbuf_size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            if (!wc->close_sent) {
                ngx_log_error(wc->log_level, c->log, 0,
                    "amonitor: peer closed the connection "
                    "without a close frame");
            }

            wc->on_close(wc);
            return;
        }

        wc->rbuf_pos = 0;
        wc->rbuf_last = n;

        if (ngx_http_amonitor_conn_process(wc) != NGX_OK) {
            return;
        }

        if (!c->read->ready) {
            break;
        }
    }

#if (NGX_SSL)
    ngx_http_amonitor_conn_tls_idle(wc);
#endif

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        wc->on_close(wc);
    }
}


/*
 * Bytes that arrived before the connection became ours (after the HTTP
 * header, say).  Returns NGX_OK, or NGX_DONE when the connection ended.
 */
ngx_int_t
ngx_http_amonitor_conn_feed(
    ngx_http_amonitor_conn_t *wc, u_char *data, size_t len)
{
    size_t n;

    while (len) {
        n = ngx_min(len, wc->frames->rbuf_size);
        ngx_memcpy(wc->frames->rbuf, data, n);

        wc->rbuf_pos = 0;
        wc->rbuf_last = n;

        if (ngx_http_amonitor_conn_process(wc) != NGX_OK) {
            return NGX_DONE;
        }

        data += n;
        len -= n;
    }

    return NGX_OK;
}


/*
 * Decode rbuf[pos..last] through the core's session layer, which keeps the
 * rules every endpoint shares (reassembly within the limit, pong, close
 * echo, the close code of a fault).  NGX_OK, or NGX_DONE when the
 * connection ended.
 */
static ngx_int_t
ngx_http_amonitor_conn_process(ngx_http_amonitor_conn_t *wc)
{
    int                     rc;
    size_t                  consumed;
    amon_ws_session_event_t ev;

    wc->last_rx = ngx_current_msec;
    wc->awaiting_pong = 0;

    if (wc->failed) {
        /* no frames after a fault (RFC 6455 7.1.7): read and dropped */
        wc->rbuf_pos = wc->rbuf_last;
        return NGX_OK;
    }

    for (;;) {

        rc = amon_ws_session_feed(&wc->session, wc->frames->rbuf + wc->rbuf_pos,
            wc->rbuf_last - wc->rbuf_pos, &consumed, &ev);

        wc->rbuf_pos += consumed;

        if (rc == AMON_AGAIN) {
            return NGX_OK;
        }

        if (rc != AMON_OK) {
            goto failed;
        }

        switch (ev.type) {

        case AMON_WS_SESSION_MESSAGE:
            wc->frames->more = (wc->rbuf_pos < wc->rbuf_last);
            wc->text_unchecked = ev.utf8_unchecked; /* for conn_decode() */
            wc->on_message(wc, ev.opcode, ev.data, ev.len);
            wc->frames->more = 0;

            if (wc->closed) {
                return NGX_DONE;
            }

            if (wc->text_bad) {
                rc = amon_ws_session_reject(&wc->session, AMON_EUTF8, &ev);
                goto failed;
            }

            /*
             * When the message made us close (close_sent), the rest of the
             * read still goes through the session, which drops data frames
             * from now on: its parser must not lose its place in the
             * stream, or what the peer sends while we wait for its close
             * frame would be read from the middle of a frame.
             */

            break;

        case AMON_WS_SESSION_PING:
            (void) ngx_http_amonitor_conn_send_bytes(
                wc, ev.reply, ev.reply_len);
            break;

        case AMON_WS_SESSION_PONG: wc->awaiting_pong = 0; break;

        case AMON_WS_SESSION_CLOSE:
            wc->close_received = 1;
            wc->peer_close = ev.close_code;

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, wc->connection->log, 0,
                "amonitor close frame received: %d", (int) ev.close_code);

            ngx_http_amonitor_conn_closing(wc, ev.reply, ev.reply_len);
            wc->on_close(wc);
            return NGX_DONE;

        default: break;
        }
    }

failed:

    ngx_log_error(wc->log_level, wc->connection->log, 0,
        "amonitor: websocket error: %s, closing with %d", amon_strerror(rc),
        (int) amon_close_code(rc));

    wc->failed = 1;

    ngx_http_amonitor_conn_closing(wc, ev.reply, ev.reply_len);
    wc->on_close(wc);

    return NGX_DONE;
}


/* masking keys for the frames the session writes on a client connection */
static void
ngx_http_amonitor_conn_mask(void *data, unsigned char *key, size_t len)
{
    ngx_http_amonitor_random(key, len);
}


/* a complete frame the session wrote (a pong): queued with priority */
static ngx_int_t
ngx_http_amonitor_conn_send_bytes(
    ngx_http_amonitor_conn_t *wc, const u_char *data, size_t len)
{
    ngx_int_t                rc;
    ngx_http_amonitor_msg_t *msg;

    if (len == 0) {
        return NGX_OK;
    }

    msg = ngx_http_amonitor_msg_copy(data, len);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    msg->refs++;
    rc = ngx_http_amonitor_conn_send(wc, msg, 1);
    ngx_http_amonitor_msg_release(wc->frames, msg);

    return rc;
}


/*
 * Our close frame (the session wrote it): what is still queued for the
 * peer and droppable goes, the close goes out first thing.
 */
static void
ngx_http_amonitor_conn_closing(
    ngx_http_amonitor_conn_t *wc, const u_char *data, size_t len)
{
    if (!wc->open || wc->close_sent) {
        return;
    }

    ngx_http_amonitor_conn_discard(wc);

    (void) ngx_http_amonitor_conn_send_bytes(wc, data, len);

    wc->close_sent = 1;

    (void) ngx_http_amonitor_conn_flush(wc);
}


/*
 * Queue a shared frame.  Droppable frames (priority 0) may use q_limit
 * slots; acks, errors and control frames may use the reserve too.
 * Returns NGX_OK, or NGX_DECLINED when there is no room (the caller counts
 * the drop or, for a priority frame, closes the connection).
 */
ngx_int_t
ngx_http_amonitor_conn_send(ngx_http_amonitor_conn_t *wc,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t priority)
{
    ngx_int_t                  rc;
    ngx_http_amonitor_qitem_t *qi;

    if (!wc->open || wc->close_sent) {
        return NGX_DECLINED;
    }

    if (wc->q_count >= (priority ? wc->q_size : wc->q_limit)) {
        return NGX_DECLINED;
    }

    rc = ngx_http_amonitor_conn_over(wc, msg->len, priority);

    if (rc == NGX_ABORT) {
        /*
         * the queue is dropped now; the ping timer ends the connection.
         * "over" first: the close frame goes through conn_over() again.
         */
        wc->over = 1;

        ngx_http_amonitor_conn_close_frame(
            wc, AMON_WS_CLOSE_POLICY, "over amonitor_connection_buffer_limit");

        if (wc->ping.timer_set) {
            ngx_del_timer(&wc->ping);
        }

        ngx_add_timer(&wc->ping, 1);
    }

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    if (wc->q_count == wc->q_cap && ngx_http_amonitor_conn_grow(wc) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (wc->q_count >= NGX_HTTP_AMONITOR_Q_KEEP) {
        /* a batch behind: what the peer has not read is held at its size */
        msg = ngx_http_amonitor_msg_shrink(msg);
    }

    qi = &wc->q[(wc->q_head + wc->q_count) % wc->q_cap];
    wc->q_count++;

    msg->refs++;
    qi->msg = msg;
    qi->sent = 0;

    wc->queued_bytes += msg->len;

    if (wc->q_count >= ngx_min(NGX_HTTP_AMONITOR_IOVS, wc->q_limit / 2)
        && wc->connection->write->ready) {
        /* a burst: write a full batch now rather than let it pile up */
        (void) ngx_http_amonitor_conn_flush(wc);
    }

    /*
     * writes made in this pass of the event loop go out together; an
     * upstream's (actions to an SDK) before the panels'
     */
    if (wc->q_count == 0) {
        return NGX_OK;
    }

    if (wc->client) {
        ngx_http_amonitor_post_first(wc->connection->write);

    } else if (!wc->connection->write->posted) {
        ngx_post_event(wc->connection->write, &ngx_posted_events);
    }

    return NGX_OK;
}


/* double the ring (at most to q_size), oldest entry first */
static ngx_int_t
ngx_http_amonitor_conn_grow(ngx_http_amonitor_conn_t *wc)
{
    ngx_uint_t                 i, cap;
    ngx_http_amonitor_qitem_t *q;

    cap = wc->q_cap ? ngx_min(wc->q_cap * 2, wc->q_size)
                    : ngx_min(NGX_HTTP_AMONITOR_Q_MIN, wc->q_size);

    if (cap <= wc->q_cap) {
        return NGX_DECLINED;
    }

    q = ngx_alloc(cap * sizeof(ngx_http_amonitor_qitem_t), wc->connection->log);
    if (q == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < wc->q_count; i++) {
        q[i] = wc->q[(wc->q_head + i) % wc->q_cap];
    }

    if (wc->q) {
        ngx_free(wc->q);
    }

    wc->q = q;
    wc->q_cap = cap;
    wc->q_head = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_amonitor_conn_send_data(ngx_http_amonitor_conn_t *wc,
    ngx_uint_t opcode, u_char *data, size_t len, ngx_uint_t priority)
{
    ngx_int_t                rc;
    ngx_http_amonitor_msg_t *msg;

    msg =
        ngx_http_amonitor_msg_frame(wc->frames, opcode, data, len, wc->client);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    msg->refs++;
    rc = ngx_http_amonitor_conn_send(wc, msg, priority);
    ngx_http_amonitor_msg_release(wc->frames, msg);

    return rc;
}


/*
 * An answer for one peer (an ack or an error for a panel): never dropped
 * silently.  A peer that does not read them is closed with 1008.
 */
void
ngx_http_amonitor_conn_answer(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len)
{
    if (wc->closed || wc->close_sent) {
        return;
    }

    if (ngx_http_amonitor_conn_send_data(wc, opcode, data, len, 1) == NGX_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, wc->connection->log, 0,
        "amonitor: panel #%ui does not read its messages and "
        "an answer cannot be queued, closing it",
        wc->id);

    ngx_http_amonitor_conn_close_frame(
        wc, AMON_WS_CLOSE_POLICY, "send queue overflow");
    wc->on_close(wc);
}


ngx_int_t
ngx_http_amonitor_conn_flush(ngx_http_amonitor_conn_t *wc)
{
    size_t                     sent, want;
    ngx_uint_t                 i, n, whole;
    ngx_buf_t                  bufs[NGX_HTTP_AMONITOR_IOVS];
    ngx_chain_t                cls[NGX_HTTP_AMONITOR_IOVS], *cl;
    ngx_connection_t          *c;
    ngx_http_amonitor_qitem_t *qi;

    c = wc->connection;

    whole = 1;
#if (NGX_SSL)
    whole = (c->ssl == NULL); /* over TLS: the pass in one record */
#endif

    while (wc->q_count) {

        if (!c->write->ready) {
            return ngx_handle_write_event(c->write, 0);
        }

        if (whole && wc->q_count == 1) {
            /* the usual case at moderate rates: send(), not writev() */
            if (ngx_http_amonitor_conn_send_one(wc) == NGX_ERROR) {
                return NGX_ERROR;
            }

            continue;
        }

        /* short frames, or TLS: one buffer, one send() (conn_tls.c) */

        switch (ngx_http_amonitor_conn_send_gathered(wc, whole, &sent)) {
        case NGX_ERROR: return NGX_ERROR;
        case NGX_AGAIN: return ngx_handle_write_event(c->write, 0);
        case NGX_OK: ngx_http_amonitor_conn_sent(wc, sent); continue;
        default: break; /* NGX_DECLINED: a long frame at the head */
        }

        /* up to NGX_HTTP_AMONITOR_IOVS frames in one writev */

        n = ngx_min(wc->q_count, NGX_HTTP_AMONITOR_IOVS);
        want = 0;

        for (i = 0; i < n; i++) {
            qi = &wc->q[(wc->q_head + i) % wc->q_cap];

            ngx_memzero(&bufs[i], sizeof(ngx_buf_t));
            bufs[i].pos = qi->msg->data + qi->sent;
            bufs[i].last = qi->msg->data + qi->msg->len;
            bufs[i].start = bufs[i].pos;
            bufs[i].end = bufs[i].last;
            bufs[i].memory = 1;
            want += bufs[i].last - bufs[i].pos;

            cls[i].buf = &bufs[i];
            cls[i].next = (i + 1 < n) ? &cls[i + 1] : NULL;
        }

        cl = c->send_chain(c, cls, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        sent = 0;

        for (i = 0; i < n; i++) {
            sent += bufs[i].pos - bufs[i].start;
        }

        ngx_http_amonitor_conn_sent(wc, sent);

        if (sent < want) {
            /* the socket is full: wait until it drains */
            return ngx_handle_write_event(c->write, 0);
        }
    }

    wc->q_head = 0;

    /*
     * A ring grown past what a pass of steady traffic takes (a panel that
     * fell behind, a burst) is freed once empty: a connection that caught
     * up does not keep up to amonitor_send_queue slots for its lifetime,
     * and the next frame starts a small ring again.
     */
    if (wc->q_cap > NGX_HTTP_AMONITOR_Q_KEEP) {
        ngx_free(wc->q);
        wc->q = NULL;
        wc->q_cap = 0;
    }

    return NGX_OK;
}


/*
 * One queued frame, one send(): the kernel's writev() path costs more per
 * call (the iovec copy, the file lookup), and most writes of a panel are
 * one frame.  A partial send leaves c->write not ready.
 */
static ngx_int_t
ngx_http_amonitor_conn_send_one(ngx_http_amonitor_conn_t *wc)
{
    ssize_t                    n;
    ngx_connection_t          *c;
    ngx_http_amonitor_qitem_t *qi;

    c = wc->connection;
    qi = &wc->q[wc->q_head];

    n = c->send(c, qi->msg->data + qi->sent, qi->msg->len - qi->sent);

    if (n == NGX_ERROR) {
        c->error = 1;
        return NGX_ERROR;
    }

    if (n == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ngx_http_amonitor_conn_sent(wc, n);

    return NGX_OK;
}


/* "n" bytes from the head of the queue are out: done frames are freed */
static void
ngx_http_amonitor_conn_sent(ngx_http_amonitor_conn_t *wc, size_t n)
{
    size_t                     size;
    ngx_http_amonitor_qitem_t *qi;

    while (n) {
        qi = &wc->q[wc->q_head];
        size = ngx_min(n, qi->msg->len - qi->sent);

        qi->sent += size;
        n -= size;

        if (qi->sent < qi->msg->len) {
            return;
        }

        wc->sent_bytes += qi->msg->len;
        ngx_http_amonitor_msg_release(wc->frames, qi->msg);
        qi->msg = NULL;

        wc->q_head = (wc->q_head + 1) % wc->q_cap;
        wc->q_count--;
    }
}


/* drop queued frames that have not started to go out */
static void
ngx_http_amonitor_conn_discard(ngx_http_amonitor_conn_t *wc)
{
    ngx_uint_t                 keep, i;
    ngx_http_amonitor_qitem_t *qi;

    if (wc->q_count == 0) {
        return;
    }

    /*
     * A frame begun stays, and over TLS every frame an unfinished
     * SSL_write() took: OpenSSL wants those bytes again (conn_tls.c).
     */
    qi = &wc->q[wc->q_head];
    keep = ngx_http_amonitor_conn_tls_kept(wc);

    if (keep == 0 && qi->sent) {
        keep = 1;
    }

    for (i = keep; i < wc->q_count; i++) {
        qi = &wc->q[(wc->q_head + i) % wc->q_cap];
        ngx_http_amonitor_msg_release(wc->frames, qi->msg);
        qi->msg = NULL;
    }

    wc->q_count = keep;
}


/* send a close frame now (best effort), after what is being written */
void
ngx_http_amonitor_conn_close_frame(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t code, const char *reason)
{
    u_char buf[AMON_WS_CONTROL_FRAME_MAX];
    size_t n;

    if (!wc->open || wc->close_sent) {
        return;
    }

    n = amon_ws_session_close(
        &wc->session, buf, sizeof(buf), (uint16_t) code, reason);

    ngx_http_amonitor_conn_closing(wc, buf, n);
}


static void
ngx_http_amonitor_conn_ping_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_conn_t *wc = ev->data;

    ngx_msec_t interval;

    interval = wc->frames->ping;

    if (wc->over) {
        wc->on_close(wc);
        return;
    }

    if (wc->awaiting_pong) {
        ngx_log_error(wc->log_level, wc->connection->log, 0,
            "amonitor: no answer to ping within %M ms, "
            "closing the connection",
            interval);
        ngx_http_amonitor_conn_close_frame(
            wc, AMON_WS_CLOSE_GOING_AWAY, "ping timeout");
        wc->on_close(wc);
        return;
    }

    if (ngx_current_msec - wc->last_rx >= interval / 2) {
        wc->awaiting_pong = 1;
        (void) ngx_http_amonitor_conn_send_data(
            wc, AMON_WS_OP_PING, NULL, 0, 1);
    }

    ngx_add_timer(&wc->ping, interval);
}
