/*
 * Copyright (C) AMonitor authors
 *
 * Shared frame buffers: the struct and the bytes are one allocation,
 * reference-counted, and small ones are cached per worker, so that steady
 * forwarding does not malloc; and the worker's strong random bytes (masks,
 * ids).  Used by conn.c and everything that makes a frame; calls nothing
 * of the module.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/rand.h>
#if (NGX_HAVE_MALLOC_TRIM)
#include <malloc.h>
#endif

#include "ngx_http_amonitor_conn.h"


#define NGX_HTTP_AMONITOR_MSG_CACHE 256 /* free small buffers */
#define NGX_HTTP_AMONITOR_MSG_SMALL 4096
#define NGX_HTTP_AMONITOR_RANDOM    4096 /* bytes drawn at a time */
#define NGX_HTTP_AMONITOR_TRIM      1000 /* ms after the first release */


static void ngx_http_amonitor_frames_trim(ngx_event_t *ev);
static void ngx_http_amonitor_frames_pass_end(ngx_event_t *ev);


ngx_int_t
ngx_http_amonitor_frames_init(ngx_http_amonitor_frames_t *f, ngx_pool_t *pool,
    size_t max_message, ngx_uint_t queue, ngx_msec_t ping,
    amon_allocator_t *allocator)
{
    f->rbuf_size = NGX_HTTP_AMONITOR_RBUF_SIZE;
    f->rbuf = ngx_palloc(pool, f->rbuf_size);
    if (f->rbuf == NULL) {
        return NGX_ERROR;
    }

    f->tbuf = ngx_palloc(pool, NGX_HTTP_AMONITOR_TLS_RECORD);
    if (f->tbuf == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&f->cache);
    f->cached = 0;
    f->max_message = max_message;
    f->queue = queue;
    f->ping = ping;
    f->allocator = allocator;

    f->trim.handler = ngx_http_amonitor_frames_trim;
    f->trim.data = f;
    f->trim.log = pool->log;
    f->trim.cancelable = 1;

    f->more = 0;
    f->pass = 1;
    f->pass_end.handler = ngx_http_amonitor_frames_pass_end;
    f->pass_end.data = f;
    f->pass_end.log = pool->log;

    return NGX_OK;
}


/* the end of a pass that sent frames at once: the next may send again */
static void
ngx_http_amonitor_frames_pass_end(ngx_event_t *ev)
{
    ngx_http_amonitor_frames_t *f = ev->data;

    f->pass++;
}


/*
 * A connection freed memory that held only its handshake (the request's
 * pool and header buffers, an SDK's handshake buffer).  Many handshakes
 * at once leave those blocks as holes between the connections that stay:
 * free for malloc, but still counted in the worker's Rss.  A second
 * later, the whole free pages among them are given back to the kernel,
 * once for all the handshakes of that second.
 */
void
ngx_http_amonitor_frames_trim_soon(ngx_http_amonitor_frames_t *f)
{
#if (NGX_HAVE_MALLOC_TRIM)
    if (!f->trim.timer_set && !ngx_exiting) {
        ngx_add_timer(&f->trim, NGX_HTTP_AMONITOR_TRIM);
    }
#endif
}


static void
ngx_http_amonitor_frames_trim(ngx_event_t *ev)
{
#if (NGX_HAVE_MALLOC_TRIM)
    ngx_msec_t start;

    start = ngx_current_msec;
    (void) malloc_trim(0);
    ngx_time_update();

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
        "amonitor: free heap pages released in %M ms",
        ngx_current_msec - start);
#endif
}


void
ngx_http_amonitor_frames_free(ngx_http_amonitor_frames_t *f)
{
    ngx_queue_t             *q;
    ngx_http_amonitor_msg_t *msg;

    while (!ngx_queue_empty(&f->cache)) {
        q = ngx_queue_head(&f->cache);
        ngx_queue_remove(q);
        msg = ngx_queue_data(q, ngx_http_amonitor_msg_t, queue);
        ngx_free(msg);
    }

    f->cached = 0;

    if (f->trim.timer_set) {
        ngx_del_timer(&f->trim);
    }

    if (f->pass_end.posted) {
        ngx_delete_posted_event(&f->pass_end);
    }
}


ngx_http_amonitor_msg_t *
ngx_http_amonitor_msg_alloc(ngx_http_amonitor_frames_t *f, size_t size)
{
    ngx_queue_t             *q;
    ngx_http_amonitor_msg_t *msg;

    if (size <= NGX_HTTP_AMONITOR_MSG_SMALL && !ngx_queue_empty(&f->cache)) {
        q = ngx_queue_head(&f->cache);
        ngx_queue_remove(q);
        f->cached--;

        msg = ngx_queue_data(q, ngx_http_amonitor_msg_t, queue);
        msg->refs = 0;
        msg->len = 0;
        return msg;
    }

    if (size < NGX_HTTP_AMONITOR_MSG_SMALL) {
        size = NGX_HTTP_AMONITOR_MSG_SMALL;
    }

    return ngx_http_amonitor_msg_alloc_exact(size);
}


/*
 * A buffer of exactly this size, for a frame one connection alone holds
 * (a pong, a close frame): a peer that sends pings and never reads must
 * not make each pong queued for it cost a small buffer (4 KiB).
 */
ngx_http_amonitor_msg_t *
ngx_http_amonitor_msg_alloc_exact(size_t size)
{
    ngx_http_amonitor_msg_t *msg;

    msg = ngx_alloc(sizeof(ngx_http_amonitor_msg_t) + size, ngx_cycle->log);
    if (msg == NULL) {
        return NULL;
    }

    msg->refs = 0;
    msg->len = 0;
    msg->size = size;
    msg->data = (u_char *) (msg + 1);

    return msg;
}


/*
 * A copy at the frame's own size of a frame that uses under half of its
 * buffer, for a connection that is a batch behind: the frames it has not
 * read may stay queued for it alone long after the other panels wrote
 * theirs, and each would keep a small buffer (4 KiB) for a heartbeat of
 * a few hundred bytes.  The frame itself when it fills its buffer, or
 * when there is no memory for the copy.
 */
ngx_http_amonitor_msg_t *
ngx_http_amonitor_msg_shrink(ngx_http_amonitor_msg_t *msg)
{
    ngx_http_amonitor_msg_t *copy;

    if (msg->len > msg->size / 2) {
        return msg;
    }

    copy = ngx_http_amonitor_msg_copy(msg->data, msg->len);

    return copy ? copy : msg;
}


/* "len" bytes in a buffer of exactly their size */
ngx_http_amonitor_msg_t *
ngx_http_amonitor_msg_copy(const u_char *data, size_t len)
{
    ngx_http_amonitor_msg_t *msg;

    msg = ngx_http_amonitor_msg_alloc_exact(len);
    if (msg == NULL) {
        return NULL;
    }

    ngx_memcpy(msg->data, data, len);
    msg->len = len;

    return msg;
}


void
ngx_http_amonitor_msg_release(
    ngx_http_amonitor_frames_t *f, ngx_http_amonitor_msg_t *msg)
{
    if (msg->refs > 1) {
        msg->refs--;
        return;
    }

    if (msg->size == NGX_HTTP_AMONITOR_MSG_SMALL
        && f->cached < NGX_HTTP_AMONITOR_MSG_CACHE) {
        ngx_queue_insert_head(&f->cache, &msg->queue);
        f->cached++;
        return;
    }

    ngx_free(msg);
}


/* one complete frame; masked (client to server) with a fresh random key */
ngx_http_amonitor_msg_t *
ngx_http_amonitor_msg_frame(ngx_http_amonitor_frames_t *f, ngx_uint_t opcode,
    u_char *payload, size_t len, ngx_uint_t masked)
{
    u_char                   mask[4];
    ngx_http_amonitor_msg_t *msg;

    msg = ngx_http_amonitor_msg_alloc(f, len + AMON_MAX_FRAME_HEADER);
    if (msg == NULL) {
        return NULL;
    }

    if (masked) {
        ngx_http_amonitor_random(mask, 4);
    }

    msg->len = amon_ws_write_frame(
        msg->data, msg->size, 1, opcode, payload, len, masked ? mask : NULL);

    if (msg->len == 0) {
        ngx_http_amonitor_msg_release(f, msg);
        return NULL;
    }

    return msg;
}


/*
 * Random bytes from a strong source (RFC 6455 10.3 asks for masking keys
 * an intermediary cannot predict; ids must not be guessable either):
 * OpenSSL's generator, drawn NGX_HTTP_AMONITOR_RANDOM bytes at a time.
 */
void
ngx_http_amonitor_random(u_char *buf, size_t len)
{
    size_t n;

    static u_char pool[NGX_HTTP_AMONITOR_RANDOM];
    static size_t left;

    while (len) {
        if (left == 0) {
            if (RAND_bytes(pool, sizeof(pool)) != 1) {
                /* never without randomness: fall back, and say so */
                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                    "amonitor: RAND_bytes() failed");

                for (n = 0; n < sizeof(pool); n++) {
                    pool[n] = (u_char) ngx_random();
                }
            }

            left = sizeof(pool);
        }

        n = ngx_min(len, left);
        ngx_memcpy(buf, pool + sizeof(pool) - left, n);
        ngx_memzero(pool + sizeof(pool) - left, n);

        left -= n;
        buf += n;
        len -= n;
    }
}
