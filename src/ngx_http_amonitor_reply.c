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
    u_char         id[AMON_UUID_LEN];
    amon_ack_out_t ack;

    ngx_http_amonitor_reply_uuid(id);

    ngx_memzero(&ack, sizeof(amon_ack_out_t));
    ack.msg_id.data = id;
    ack.msg_id.len = AMON_UUID_LEN;
    ack.target_id.data = target_id->data;
    ack.target_id.len = target_id->len;
    ack.timestamp = ngx_http_amonitor_reply_now();
    ack.action_msg_id.data = msg_id->data;
    ack.action_msg_id.len = msg_id->len;
    ack.success = 1;
    ack.message.data = (const unsigned char *) "duplicate ignored";
    ack.message.len = sizeof("duplicate ignored") - 1;
    ack.duplicate = 1;

    if (original) {
        ack.original.data = original->len ? original->data : NULL;
        ack.original.len = original->len;
    }

    w->scratch.len = 0;

    if (amon_envelope_build_ack(
            &w->scratch, w->amcf->max_message, &w->allocator, &ack, binary)
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
    u_char              id[AMON_UUID_LEN], payload[AMON_MAX_URL_LEN + 512];
    amon_buf_t          b;
    amon_envelope_out_t e;

    b.data = payload;
    b.len = 0;
    b.cap = sizeof(payload);

    b.len = ngx_sprintf(payload, "{\"target_id\":") - payload;

    if (amon_json_append_string(&b, sizeof(payload) - 64, NULL,
            (amon_str_t) ngx_http_amonitor_amon_str(&u->id))
        != AMON_OK) {
        return NULL;
    }

    b.len = ngx_sprintf(payload + b.len, ",\"state\":\"%s\",\"url\":", state)
        - payload;

    if (amon_json_append_string(&b, sizeof(payload) - 2, NULL,
            (amon_str_t) ngx_http_amonitor_amon_str(&u->norm))
        != AMON_OK) {
        return NULL;
    }

    payload[b.len++] = '}';

    ngx_http_amonitor_reply_uuid(id);

    ngx_memzero(&e, sizeof(amon_envelope_out_t));
    e.msg_id.data = id;
    e.msg_id.len = AMON_UUID_LEN;
    e.type.data = (const unsigned char *) "target_status";
    e.type.len = sizeof("target_status") - 1;
    e.target_id.data = u->id.data;
    e.target_id.len = u->id.len;
    e.timestamp = ngx_http_amonitor_reply_now();
    e.payload_json.data = payload;
    e.payload_json.len = b.len;

    w->scratch.len = 0;

    if (amon_envelope_build_json(
            &w->scratch, w->amcf->max_message, &w->allocator, &e)
        != AMON_OK) {
        return NULL;
    }

    return ngx_http_amonitor_msg_frame(
        &w->frames, AMON_WS_OP_TEXT, w->scratch.data, w->scratch.len, 0);
}


/*
 * The result kept in the store for an action: {"success":B,"message":S}
 * or, for an error, {"success":false,"code":C,"message":S}.  "result"
 * points to a buffer of "size" bytes; a message that does not fit is left
 * out.
 */
void
ngx_http_amonitor_reply_result(ngx_str_t *result, size_t size,
    ngx_uint_t success, amon_str_t message, const char *code)
{
    u_char    *buf;
    amon_buf_t b;

    buf = result->data;

    result->len =
        ngx_snprintf(buf, size, "{\"success\":%s}", success ? "true" : "false")
        - buf;

    if (code == NULL && message.len >= size / 2) {
        return;
    }

    b.data = buf;
    b.cap = size;

    if (code) {
        b.len = ngx_snprintf(buf, size,
                    "{\"success\":false,\"code\":\"%s\",\"message\":", code)
            - buf;

    } else {
        b.len = ngx_snprintf(buf, size,
                    "{\"success\":%s,\"message\":", success ? "true" : "false")
            - buf;
    }

    if (amon_json_append_string(&b, size - 1, NULL, message) == AMON_OK) {
        buf[b.len++] = '}';
        result->len = b.len;
        return;
    }

    /* escaping made it too long: the gist only (nothing for an error) */
    result->len = code ? 0
                       : (size_t) (ngx_snprintf(buf, size, "{\"success\":%s}",
                                       success ? "true" : "false")
                           - buf);
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
