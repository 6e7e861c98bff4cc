/*
 * Copyright (C) AMonitor authors
 *
 * The envelopes the agent writes itself: errors and duplicate acks for one
 * panel, target status for all of them, and the result kept in the store.
 * Built with the core's builders into the worker's scratch buffer.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"


static void ngx_http_amonitor_reply_uuid(u_char *out);


#define ngx_http_amonitor_amon_str(s) \
    { \
        (const unsigned char *) (s)->data, (s)->len \
    }


int64_t
ngx_http_amonitor_reply_now(void)
{
    ngx_time_t *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/* an error envelope for one panel; msg_id/target_id may be NULL */
void
ngx_http_amonitor_reply_error(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_uint_t binary, ngx_str_t *msg_id,
    ngx_str_t *target_id, const char *code, const char *message)
{
    amon_str_t id, tid, msg;

    id.data = (msg_id && msg_id->len) ? msg_id->data : NULL;
    id.len = msg_id ? msg_id->len : 0;
    tid.data = (target_id && target_id->len) ? target_id->data : NULL;
    tid.len = target_id ? target_id->len : 0;
    msg.data = (const unsigned char *) message;
    msg.len = ngx_strlen(message);

    w->scratch.len = 0;

    if (amon_envelope_build_error(&w->scratch, w->amcf->max_message,
            &w->allocator, id, tid, ngx_http_amonitor_reply_now(), code, msg,
            binary)
        != AMON_OK) {
        return;
    }

    ngx_http_amonitor_conn_answer(panel,
        binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, w->scratch.data,
        w->scratch.len);
}


/* the agent's answer to a repeated msg_id: never forwarded to the SDK */
void
ngx_http_amonitor_reply_duplicate(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_uint_t binary, ngx_str_t *msg_id,
    ngx_str_t *target_id, ngx_str_t *original)
{
    u_char     id[AMON_UUID_LEN];
    amon_str_t uuid, orig;

    ngx_http_amonitor_reply_uuid(id);

    uuid.data = id;
    uuid.len = AMON_UUID_LEN;

    orig.data = (original && original->len) ? original->data : NULL;
    orig.len = original ? original->len : 0;

    w->scratch.len = 0;

    if (amon_envelope_build_duplicate_ack(&w->scratch, w->amcf->max_message,
            &w->allocator, uuid,
            (amon_str_t) ngx_http_amonitor_amon_str(target_id),
            ngx_http_amonitor_reply_now(),
            (amon_str_t) ngx_http_amonitor_amon_str(msg_id), orig, binary)
        != AMON_OK) {
        return;
    }

    ngx_http_amonitor_conn_answer(panel,
        binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, w->scratch.data,
        w->scratch.len);
}


/*
 * A target went up or down (a message type old panels skip), as one shared
 * frame for every panel; NULL if it cannot be built.
 */
ngx_http_amonitor_msg_t *
ngx_http_amonitor_reply_target_status(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, const char *state)
{
    u_char     id[AMON_UUID_LEN];
    amon_str_t uuid;

    ngx_http_amonitor_reply_uuid(id);

    uuid.data = id;
    uuid.len = AMON_UUID_LEN;

    w->scratch.len = 0;

    if (amon_envelope_build_target_status(&w->scratch, w->amcf->max_message,
            &w->allocator, uuid,
            (amon_str_t) ngx_http_amonitor_amon_str(&u->id),
            ngx_http_amonitor_reply_now(), state,
            (amon_str_t) ngx_http_amonitor_amon_str(&u->norm))
        != AMON_OK) {
        return NULL;
    }

    return ngx_http_amonitor_msg_frame(
        &w->frames, AMON_WS_OP_TEXT, w->scratch.data, w->scratch.len, 0);
}


/*
 * The result kept in the store for an action, written into "result"
 * (whose data has room for "size" bytes): {"success":B,"message":S}, or
 * for an error {"success":false,"code":C,"message":S}.  A message too long
 * for the room is left out of an ack's result; an error's result is then
 * empty (not stored).
 */
void
ngx_http_amonitor_reply_result(ngx_str_t *result, size_t size,
    ngx_uint_t success, amon_str_t message, const char *code)
{
    amon_buf_t b;

    b.data = result->data;
    b.len = 0;
    b.cap = size;

    if ((code || message.len < size / 2)
        && amon_envelope_build_result(&b, size, NULL, success, code, &message)
            == AMON_OK) {
        result->len = b.len;
        return;
    }

    b.len = 0;

    if (code
        || amon_envelope_build_result(&b, size, NULL, success, NULL, NULL)
            != AMON_OK) {
        b.len = 0;
    }

    result->len = b.len;
}


static void
ngx_http_amonitor_reply_uuid(u_char *out)
{
    u_char   rnd[16];
    uint32_t r;
    size_t   i;

    for (i = 0; i < 16; i += 4) {
        r = (uint32_t) ngx_random();
        ngx_memcpy(&rnd[i], &r, 4);
    }

    amon_uuid4(rnd, out);
}
