/*
 * Copyright (C) AMonitor authors
 *
 * One WebSocket connection, panel or upstream, and the shared frames it
 * sends.  The connection layer knows nothing of panels, SDKs or actions:
 * its owner gets complete messages and the end of the connection through
 * two callbacks.
 */

#ifndef _NGX_HTTP_AMONITOR_CONN_H_INCLUDED_
#define _NGX_HTTP_AMONITOR_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "amon_core.h"
#include "amon_ws_frame.h"
#include "amon_ws_session.h"
#include "amon_envelope.h"


#define NGX_HTTP_AMONITOR_RBUF_SIZE  65536
#define NGX_HTTP_AMONITOR_Q_MIN      16
#define NGX_HTTP_AMONITOR_RESERVED_Q 64 /* for acks and errors */
#define NGX_HTTP_AMONITOR_READS      8 /* reads per event */
#define NGX_HTTP_AMONITOR_IOVS       64 /* frames per send_chain */
#define NGX_HTTP_AMONITOR_TLS_RECORD 16384 /* the most one TLS record holds */
/* longer frames go out by writev(), not copied into one buffer first */
#define NGX_HTTP_AMONITOR_GATHER_MAX 1024
/*
 * a ring larger than this is freed once empty: a queue of IOVS frames is
 * written at once (conn_send), so steady traffic does not need more
 */
#define NGX_HTTP_AMONITOR_Q_KEEP NGX_HTTP_AMONITOR_IOVS
/* the largest frame conn_send_now() may write at once (see there) */
#define NGX_HTTP_AMONITOR_NOW_MAX 65536


typedef struct ngx_http_amonitor_conn_s ngx_http_amonitor_conn_t;


/*
 * A frame shared by reference: server frames are unmasked, so the same
 * bytes serve every panel.  Freed (or cached) when the last queue drops it.
 */
typedef struct {
    ngx_uint_t  refs;
    size_t      len;
    size_t      size;
    u_char     *data;
    ngx_queue_t queue; /* in the free cache */
} ngx_http_amonitor_msg_t;


/*
 * What every connection of a worker shares: the one read buffer (input is
 * decoded as soon as it is read), the cache of small frame buffers, the
 * limits and the allocator for reassembly.
 */
typedef struct {
    u_char           *rbuf;
    size_t            rbuf_size;
    u_char           *tbuf; /* TLS_RECORD bytes: frames gathered (conn_tls) */
    ngx_queue_t       cache;
    ngx_uint_t        cached;
    size_t            max_message;
    ngx_uint_t        queue; /* amonitor_send_queue */
    ngx_msec_t        ping;
    amon_allocator_t *allocator;
    size_t            buffer_limit; /* per connection, in bytes */
    ngx_atomic_t     *oversize; /* counter: closed over the limit */
    ngx_event_t       trim; /* give freed heap pages back, once a second */
    ngx_uint_t        more; /* rbuf holds bytes after the message being
                               handled: more frames of the same read */
    uint32_t          pass; /* the event loop's passes with a frame sent
                               at once (conn_send_now), counted by ... */
    ngx_event_t       pass_end; /* ... this, posted by the first of them */
} ngx_http_amonitor_frames_t;


typedef struct {
    ngx_http_amonitor_msg_t *msg;
    size_t                   sent; /* bytes already written */
} ngx_http_amonitor_qitem_t;


typedef void (*ngx_http_amonitor_message_pt)(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
typedef void (*ngx_http_amonitor_close_pt)(ngx_http_amonitor_conn_t *wc);


struct ngx_http_amonitor_conn_s {
    /*
     * What a heartbeat fanned out to a panel reads, first and in 64 bytes:
     * with a thousand panels each one is a cache miss (panels are
     * allocated on a cache line, panel_run.c)
     */
    ngx_connection_t           *connection;
    ngx_http_amonitor_frames_t *frames;
    ngx_event_t                *wev; /* connection->write */
    ngx_uint_t                  q_cap; /* allocated entries */
    ngx_uint_t                  q_count;
    void                       *seen; /* a panel: what its snapshot
                                         said (fanout.c's filter) */
    uint32_t                    pass; /* frames->pass of its last frame
                                         sent at once (conn_now.c) */
    ngx_socket_t                fd; /* connection->fd */
    u_char                      text_unchecked; /* on_message()'s text:
                                                   UTF-8 not checked yet */
    u_char                      text_bad; /* conn_decode() found it not
                                             UTF-8: close with 1007 */

    unsigned client : 1; /* mask what we send */
    unsigned open : 1;
    unsigned close_sent : 1;
    unsigned close_received : 1;
    unsigned awaiting_pong : 1;
    unsigned closed : 1;
    unsigned over : 1; /* closed over amonitor_connection_buffer_limit */
    unsigned tls : 1; /* c->ssl, here to spare a cache line */
    unsigned failed : 1; /* a fault of the stream: what follows is dropped */
    unsigned encoding : 2; /* a panel: 0 (as sent), or the opcode it
                              chose: TEXT, BINARY */

    ngx_http_amonitor_qitem_t *q;
    ngx_uint_t                 q_head;
    ngx_uint_t                 q_limit; /* for droppable frames */
    ngx_uint_t                 q_size; /* limit + reserved */
    uint64_t                   queued_bytes;
    uint64_t                   sent_bytes;
    /* bytes an unfinished SSL_write() has taken from the queue */
    size_t tls_held;

    void       *data; /* the owner: panel or upstream */
    ngx_queue_t queue; /* a panel: in the worker's list */
    ngx_uint_t  id; /* a panel: its number, for logs */
    ngx_uint_t  pending; /* a panel: actions it waits for */
    size_t      actions_held; /* a panel: their frames not queued yet */
    ngx_uint_t  queries; /* a panel: action_status the store answers later */
    void       *rights; /* a panel: its token's (rights.c) */
    void       *sub; /* a panel: what it subscribed to */

    size_t rbuf_pos; /* in frames->rbuf */
    size_t rbuf_last;

    ngx_event_t ping;
    ngx_msec_t  last_rx;

    ngx_http_amonitor_message_pt on_message;
    ngx_http_amonitor_close_pt   on_close;

    ngx_uint_t dropped;
    ngx_uint_t log_level; /* for peer faults */
    ngx_uint_t peer_close; /* code the peer sent */

    amon_ws_session_t session; /* the rules every endpoint shares */
};


/* frames */
ngx_int_t ngx_http_amonitor_frames_init(ngx_http_amonitor_frames_t *f,
    ngx_pool_t *pool, size_t max_message, ngx_uint_t queue, ngx_msec_t ping,
    amon_allocator_t *allocator);
void      ngx_http_amonitor_frames_free(ngx_http_amonitor_frames_t *f);
void      ngx_http_amonitor_frames_trim_soon(ngx_http_amonitor_frames_t *f);
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_alloc(
    ngx_http_amonitor_frames_t *f, size_t size);
void ngx_http_amonitor_msg_release(
    ngx_http_amonitor_frames_t *f, ngx_http_amonitor_msg_t *msg);
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_frame(
    ngx_http_amonitor_frames_t *f, ngx_uint_t opcode, u_char *payload,
    size_t len, ngx_uint_t masked);
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_alloc_exact(size_t size);
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_shrink(
    ngx_http_amonitor_msg_t *msg);
ngx_http_amonitor_msg_t *ngx_http_amonitor_msg_copy(
    const u_char *data, size_t len);

void ngx_http_amonitor_random(u_char *buf, size_t len);

/* connections */
ngx_int_t ngx_http_amonitor_conn_init(ngx_http_amonitor_conn_t *wc,
    ngx_connection_t *c, ngx_http_amonitor_frames_t *f, ngx_uint_t client);
void      ngx_http_amonitor_conn_read(ngx_http_amonitor_conn_t *wc);
ngx_int_t ngx_http_amonitor_conn_feed(
    ngx_http_amonitor_conn_t *wc, u_char *data, size_t len);
ngx_int_t ngx_http_amonitor_conn_flush(ngx_http_amonitor_conn_t *wc);
ngx_int_t ngx_http_amonitor_conn_send_now(
    ngx_http_amonitor_conn_t *wc, ngx_http_amonitor_msg_t *msg);
ngx_int_t ngx_http_amonitor_conn_send(ngx_http_amonitor_conn_t *wc,
    ngx_http_amonitor_msg_t *msg, ngx_uint_t priority);
ngx_int_t ngx_http_amonitor_conn_send_data(ngx_http_amonitor_conn_t *wc,
    ngx_uint_t opcode, u_char *data, size_t len, ngx_uint_t priority);
void      ngx_http_amonitor_conn_answer(
         ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_amonitor_conn_close_frame(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t code, const char *reason);
void ngx_http_amonitor_conn_free(ngx_http_amonitor_conn_t *wc);
void ngx_http_amonitor_conn_start_ping(
    ngx_http_amonitor_conn_t *wc, ngx_msec_t interval);
ngx_int_t ngx_http_amonitor_conn_hold(ngx_http_amonitor_conn_t *wc, size_t len);
ngx_int_t ngx_http_amonitor_conn_over(
    ngx_http_amonitor_conn_t *wc, size_t len, ngx_uint_t priority);
ngx_int_t ngx_http_amonitor_conn_send_gathered(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t whole, size_t *sent);
#if (NGX_SSL)
void ngx_http_amonitor_conn_tls_idle(ngx_http_amonitor_conn_t *wc);
#endif
ngx_uint_t ngx_http_amonitor_conn_tls_kept(ngx_http_amonitor_conn_t *wc);


/*
 * Post "ev" ahead of the events already posted (ngx_post_event() adds it
 * last).  The end of a pass writes, in this order: what goes to Redis
 * (a finish is there before its ack can reach the panel), the zone's
 * claims and what goes to the SDKs (an action's round trip does not wait
 * for the panels' writes), then the panels' frames.
 */
static ngx_inline void
ngx_http_amonitor_post_first(ngx_event_t *ev)
{
    if (!ev->posted) {
        ev->posted = 1;
        ngx_queue_insert_head(&ngx_posted_events, &ev->queue);
    }
}


/*
 * Decode a message of "wc" (NULL: not from a connection), in its handler.
 * Text that came as one whole frame is not UTF-8-checked by the session
 * (amon_ws_session_utf8_later()): every text message is decoded as strict
 * JSON, whose strings are checked byte for byte, so a text that decodes
 * is valid UTF-8.  One that does not is checked now: AMON_EUTF8, not
 * answered, and the connection closes with 1007 (RFC 6455 8.1) when the
 * handler returns, as for a fault of its frames.
 */
static ngx_inline int
ngx_http_amonitor_conn_decode(ngx_http_amonitor_conn_t *wc,
    amon_envelope_t *env, ngx_uint_t opcode, u_char *data, size_t len,
    const amon_allocator_t *a)
{
    int rc;

    if (opcode == AMON_WS_OP_BINARY) {
        return amon_envelope_decode_pb(env, data, len, a);
    }

    rc = amon_envelope_decode_json(env, data, len);

    if (rc != AMON_OK && wc && wc->text_unchecked
        && amon_utf8_validate(data, len) != AMON_OK) {
        wc->text_bad = 1;
        return AMON_EUTF8;
    }

    return rc;
}


#endif /* _NGX_HTTP_AMONITOR_CONN_H_INCLUDED_ */
