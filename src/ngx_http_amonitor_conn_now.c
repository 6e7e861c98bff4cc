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
     * a frame that goes out in part can always be queued for the rest.
     * With nothing queued a connection holds at most the message it
     * reassembles, amonitor_max_message_size, and the buffer limit is at
     * least that plus 64k (module.c): a frame of up to 64k fits, and
     * conn_over() need not be asked (it reads another cache line).  The
     * fields read first are in one cache line of the connection; c->ssl
     * and c->write->ready are not.
     */
    if (wc->q_count || f->more || wc->pass == f->pass || wc->q_cap == 0
        || wc->q_limit == 0 || !wc->open || wc->close_sent || wc->over
        || wc->tls || msg->len > NGX_HTTP_AMONITOR_NOW_MAX
        || !c->write->ready) {
        return ngx_http_amonitor_conn_send(wc, msg, 0);
    }

    wc->pass = f->pass;

    if (!f->pass_end.posted) {
        ngx_post_event(&f->pass_end, &ngx_posted_events);
    }

    n = c->send(c, msg->data, msg->len);

    if (n == (ssize_t) msg->len) {
        wc->queued_bytes += n;
        wc->sent_bytes += n;
        return NGX_OK;
    }

    /*
     * Not all of it (the socket is full), or an error: queued as any
     * frame, and the write handler goes on from where send() stopped,
     * or meets the error again and ends the panel.
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
