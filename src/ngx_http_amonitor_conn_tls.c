/*
 * Copyright (C) AMonitor authors
 *
 * A connection's queued frames gathered into one buffer, and over TLS.
 *
 * The kernel's writev() pays per iovec (each segment is a separate copy
 * from user memory, with its own checks): for a queue of short frames,
 * the actions of sixteen panels going to one SDK, copying them into one
 * buffer and sending that costs less than an iovec per frame.  Longer
 * frames (snapshots, large events) go out by writev(), not copied twice.
 *
 * Each SSL_write() is at least one record and one write() to the socket,
 * so over TLS the frames queued since the last write are gathered into
 * one record (up to 16k) instead of being written one by one.
 *
 * OpenSSL's rule for a write that could not finish (it keeps the record
 * it encrypted, part of which may be on the wire already) is that the
 * next SSL_write() passes the same buffer, with at least as many bytes.
 * The worker's one gather buffer is the same buffer every time; the bytes
 * the unfinished write took stay at the head of the queue until it
 * finishes (conn_discard keeps their frames), so gathering again puts
 * them back at its start.  Calls nothing in conn.c, which calls it.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_amonitor_conn.h"


static size_t ngx_http_amonitor_conn_gather(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t whole, ngx_uint_t *frames);


/*
 * What is queued, in one buffer and one send().  "whole": a plain
 * connection, whole short frames only; NGX_DECLINED if fewer than two are
 * at the head (writev() sends the long one).  Otherwise TLS: one record.
 * NGX_OK with *sent bytes written, NGX_AGAIN (the socket is full), or
 * NGX_ERROR.
 */
ngx_int_t
ngx_http_amonitor_conn_send_gathered(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t whole, size_t *sent)
{
    size_t            len;
    ssize_t           n;
    ngx_uint_t        frames;
    ngx_connection_t *c;

    c = wc->connection;
    len = ngx_http_amonitor_conn_gather(wc, whole, &frames);

    if (whole && frames < 2) {
        return NGX_DECLINED;
    }

    n = c->send(c, wc->frames->tbuf, len);

    if (n == NGX_ERROR) {
        c->error = 1;
        return NGX_ERROR;
    }

    if (n == NGX_AGAIN) {
        /* what OpenSSL holds until the write is retried */
        wc->tls_held = whole ? 0 : len;
        return NGX_AGAIN;
    }

    wc->tls_held = 0;
    *sent = n;

    return NGX_OK;
}


/*
 * Copies the queued bytes from the head into the worker's gather buffer
 * (at most TLS_RECORD) and returns how many.  "whole": only whole frames
 * of at most NGX_HTTP_AMONITOR_GATHER_MAX bytes, up to the first other
 * one; *frames tells how many were taken.  Otherwise the buffer is filled,
 * the last frame in part if it does not fit.
 */
static size_t
ngx_http_amonitor_conn_gather(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t whole, ngx_uint_t *frames)
{
    u_char                    *buf, *last, *end;
    size_t                     size;
    ngx_uint_t                 i;
    ngx_http_amonitor_qitem_t *qi;

    buf = wc->frames->tbuf;
    end = buf + NGX_HTTP_AMONITOR_TLS_RECORD;
    last = buf;

    for (i = 0; i < wc->q_count && last < end; i++) {
        qi = &wc->q[(wc->q_head + i) % wc->q_cap];
        size = qi->msg->len - qi->sent;

        if (whole
            && (size > NGX_HTTP_AMONITOR_GATHER_MAX
                || size > (size_t) (end - last))) {
            break;
        }

        size = ngx_min(size, (size_t) (end - last));
        last = ngx_cpymem(last, qi->msg->data + qi->sent, size);
    }

    *frames = i;

    return last - buf;
}


#if (NGX_SSL)

/*
 * A wss:// connection that has read all there was gives OpenSSL's read
 * buffer (about 16.5k) back.  SSL_MODE_RELEASE_BUFFERS frees it after a
 * read that finds nothing, but a client keeps it after the TLS 1.3
 * session tickets a server sends once its handshake is done: every idle
 * wss:// connection held one.  A server's connection (a panel) reads no
 * tickets and has nothing to free, so it does not pay the call (about
 * 130 ns).  SSL_free_buffers() declines while a record is half read,
 * unread data is buffered, or a write is unfinished.
 */
void
ngx_http_amonitor_conn_tls_idle(ngx_http_amonitor_conn_t *wc)
{
    ngx_connection_t *c;

    c = wc->connection;

    if (wc->client && c->ssl && !c->read->ready) {
        (void) SSL_free_buffers(c->ssl->connection);
    }
}

#endif


/* how many frames at the head an unfinished SSL_write() holds */
ngx_uint_t
ngx_http_amonitor_conn_tls_kept(ngx_http_amonitor_conn_t *wc)
{
    size_t                     held, size;
    ngx_uint_t                 i;
    ngx_http_amonitor_qitem_t *qi;

    held = wc->tls_held;

    for (i = 0; held && i < wc->q_count; i++) {
        qi = &wc->q[(wc->q_head + i) % wc->q_cap];
        size = qi->msg->len - qi->sent;
        held -= ngx_min(held, size);
    }

    return i;
}
