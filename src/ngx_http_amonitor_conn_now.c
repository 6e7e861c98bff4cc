/*
 * Copyright (C) AMonitor authors
 *
 * A heartbeat or event for a panel written at once, in the handler that
 * read it, rather than queued for the end of the pass: with many panels
 * and one frame per wake-up, going over every panel twice (queue and
 * post, then flush) costs a cache miss or two per panel that one send()
 * does not.  Only where queueing would gain nothing: a plain connection
 * with nothing queued and its socket ready, the frame the only one of
 * its read, and no frame sent at once to the panel yet in this pass.
 * Everything else is queued as before, so under load a panel still gets
 * the frames of a pass in one write (at most one more when its first
 * frame of the pass came alone).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_amonitor_conn.h"


static ssize_t ngx_http_amonitor_conn_now_send(
    ngx_http_amonitor_conn_t *wc, u_char *data, size_t len);


/*
 * Returns what ngx_http_amonitor_conn_send() returns for a droppable
 * frame: NGX_OK (sent or queued), or NGX_DECLINED (no room: dropped).
 */
ngx_int_t
ngx_http_amonitor_conn_send_now(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_msg_t *msg)
{
    ssize_t                     n;
    ngx_connection_t           *c;
    ngx_http_amonitor_frames_t *f;

    c = wc->connection;
    f = wc->frames;

    /*
     * A ring with a free slot (q_cap) and room under the limits, so that
     * a frame that goes out in part can always be queued for the rest:
     * amonitor_send_queue is at least 16, and with nothing queued a
     * connection holds at most the message it reassembles,
     * amonitor_max_message_size, while the buffer limit is at least that
     * plus 64k (module.c): a frame of up to 64k fits, and conn_over()
     * need not be asked.  All this reads one cache line of the
     * connection ("wc") and one of its write event (fanout.c fetches
     * both ahead); c itself is not read.
     */
    if (wc->q_count || f->more || wc->pass == f->pass || wc->q_cap == 0
        || !wc->open || wc->close_sent || wc->over || wc->tls
        || msg->len > NGX_HTTP_AMONITOR_NOW_MAX || !wc->wev->ready) {
        return ngx_http_amonitor_conn_send(wc, msg, 0);
    }

    wc->pass = f->pass;

    if (!f->pass_end.posted) {
        ngx_post_event(&f->pass_end, &ngx_posted_events);
    }

    n = ngx_http_amonitor_conn_now_send(wc, msg->data, msg->len);

    if (n == (ssize_t) msg->len) {
        /*
         * queued_bytes and sent_bytes are not counted: they matter as a
         * difference (conn_limit.c), and as offsets only on an SDK's
         * connection (action_end.c), never here
         */
        return NGX_OK;
    }

    /*
     * Not all of it (the socket is full), or an error: queued as any
     * frame, and the write handler goes on from where send() stopped,
     * or meets the error again and ends the panel (c->write->ready is
     * still set after an error or EINTR: the posted write event tries).
     */

    if (ngx_http_amonitor_conn_send(wc, msg, 0) != NGX_OK) {

        if (n > 0) {
            /* not reached (see above); the stream could not go on */
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                "amonitor: panel #%ui: the rest of a frame cannot be "
                "queued, closing it",
                wc->id);

            wc->over = 1;

            if (wc->ping.timer_set) {
                ngx_del_timer(&wc->ping);
            }

            ngx_add_timer(&wc->ping, 1);
        }

        return NGX_DECLINED;
    }

    if (n > 0) {
        wc->q[wc->q_head].sent = n;
    }

    return NGX_OK;
}


/*
 * send() as c->send (ngx_unix_send) does it, without what a panel does
 * not use (c->sent) and without reading c: its socket and write event
 * are kept in the connection's first cache line.  An error
 * is left for the write handler: the frame is queued, c->send meets the
 * error again and nginx logs it as it logs any.  Returns the bytes sent,
 * or NGX_AGAIN.
 */
static ssize_t
ngx_http_amonitor_conn_now_send(
    ngx_http_amonitor_conn_t *wc, u_char *data, size_t len)
{
    ssize_t n;

    n = send(wc->fd, data, len, 0);

    if (n == (ssize_t) len) {
        return n;
    }

    if (n >= 0 || ngx_socket_errno == NGX_EAGAIN) {
        /* the socket is full: ready again on its next write event */
        wc->wev->ready = 0;
    }

    return (n > 0) ? n : NGX_AGAIN;
}
