/*
 * Copyright (C) AMonitor authors
 *
 * The envelopes the agent writes itself: errors for one panel, target
 * status for all of them, an SDK's message stamped or converted for
 * panels.  Built with the core's builders into the worker's scratch
 * buffer.  What comes from the store (duplicate acks, action_status) is
 * in reply_stored.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "amonitor.pb-c.h"


static ngx_int_t ngx_http_amonitor_reply_stamp_json(
    ngx_http_amonitor_worker_t *w, ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, u_char *data, size_t len, ngx_uint_t source,
    ngx_uint_t final, size_t max, ngx_str_t *out);
static ngx_int_t ngx_http_amonitor_reply_stamp_pb(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_uint_t source, ngx_uint_t final, size_t max,
    ngx_str_t *out);
static ngx_uint_t ngx_http_amonitor_reply_foreign(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env);
static int ngx_http_amonitor_reply_pb_source(ngx_http_amonitor_worker_t *w,
    amon_buf_t *b, ngx_http_amonitor_upstream_t *u, size_t max);
static ngx_int_t ngx_http_amonitor_reply_append(
    ngx_http_amonitor_worker_t *w, u_char *data, size_t len, size_t max);
static u_char *ngx_http_amonitor_reply_varint(u_char *p, uint64_t v);


int64_t
ngx_http_amonitor_reply_now(void)
{
    ngx_time_t *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/*
 * An error for one panel about one of its messages: its msg_id and
 * trace_id, the target it concerns and, for an action, "action_msg_id" and
 * whether this is the action's last reply.
 */
void
ngx_http_amonitor_reply_error(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
    const char *code, const char *message, ngx_uint_t final)
{
    amon_error_out_t err;

    ngx_memzero(&err, sizeof(amon_error_out_t));

    err.msg_id = ngx_http_amonitor_amon_opt(&about->msg_id);
    err.trace_id = ngx_http_amonitor_amon_opt(&about->trace_id);
    err.target_id = ngx_http_amonitor_amon_opt(&about->target_id);
    err.timestamp = ngx_http_amonitor_reply_now();
    err.code = code;
    err.message.data = (const unsigned char *) message;
    err.message.len = ngx_strlen(message);

    if (about->action) {
        err.action_msg_id = err.msg_id;
        err.final = final ? AMON_FINAL_YES : AMON_FINAL_NO;
    }

    w->scratch.len = 0;

    ngx_http_amonitor_reply_send(w, panel, about,
        amon_envelope_build_error_out(&w->scratch, w->amcf->max_message,
            &w->allocator, &err, about->binary));
}


/* an envelope built into the scratch buffer ("rc" its builder's result) */
void
ngx_http_amonitor_reply_send(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about, int rc)
{
    if (rc != AMON_OK) {
        ngx_log_error(NGX_LOG_ERR, panel->connection->log, 0,
            "amonitor: an answer to panel #%ui could not be made: %s",
            panel->id, amon_strerror(rc));
        return;
    }

    ngx_http_amonitor_conn_answer(panel,
        about->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, w->scratch.data,
        w->scratch.len);
}


/*
 * A message from an SDK as panels get it: its bytes unchanged, unless
 *  - the SDK's own target_id (envelope or payload) is absent or differs
 *    from the agent's name for the target: "source" (the agent's name) is
 *    added, first member of the JSON object or Envelope field 7;
 *  - it is an ack, the action's last reply: "final":true goes first into
 *    its payload (a protobuf ack is written anew, with final = 7).
 * *out is the input or the worker's scratch buffer.
 */
ngx_int_t
ngx_http_amonitor_reply_stamp(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, ngx_uint_t opcode,
    u_char *data, size_t len, ngx_uint_t final, ngx_str_t *out)
{
    size_t     max;
    ngx_uint_t source;

    source = ngx_http_amonitor_reply_foreign(u, env);

    out->data = data;
    out->len = len;

    if (!source && !final) {
        return NGX_OK;
    }

    max = w->amcf->max_message + AMON_MAX_ID_LEN * 6 + 64;
    w->scratch.len = 0;

    if (opcode == AMON_WS_OP_BINARY) {
        return ngx_http_amonitor_reply_stamp_pb(
            w, u, env, data, len, source, final, max, out);
    }

    return ngx_http_amonitor_reply_stamp_json(
        w, u, env, data, len, source, final, max, out);
}


/*
 * A message in the other encoding than it came in, for a panel that chose
 * one (paid once per message and encoding, not per panel): "source" when
 * an SDK does not name itself as the agent does (u NULL: the agent's own
 * message), "final" for an action's last reply.  *out is in w->convert.
 */
ngx_int_t
ngx_http_amonitor_reply_convert(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, ngx_uint_t final,
    ngx_str_t *out)
{
    int                                      rc;
    size_t                                   max;
    amon_str_t                               source;
    amon_ack_out_t                           ack;
    Amonitor__Control__V1__ActionAckPayload *pb;

    source.data = NULL;
    source.len = 0;

    if (u && ngx_http_amonitor_reply_foreign(u, env)) {
        source.data = u->id.data;
        source.len = u->id.len;
    }

    max = w->amcf->max_message + AMON_MAX_ID_LEN * 6 + 64;
    w->convert.len = 0;

    if (final && !env->binary) {
        /* a JSON ack to a protobuf panel: written anew, final set */
        ngx_memzero(&ack, sizeof(amon_ack_out_t));

        ack.msg_id = env->msg_id;
        ack.trace_id = env->trace_id;
        ack.target_id = env->target_id;
        ack.timestamp =
            env->has_timestamp ? env->timestamp : AMON_TIMESTAMP_NONE;
        ack.action_msg_id = env->action_msg_id;
        ack.success = env->success;
        ack.message = env->message;
        ack.final = AMON_FINAL_YES;

        rc = amon_envelope_build_ack(&w->convert, max, &w->allocator, &ack, 1);

        if (rc == AMON_OK && source.data) {
            rc = ngx_http_amonitor_reply_pb_source(w, &w->convert, u, max);
        }

    } else {
        if (final && env->binary && env->pb_payload) {
            pb = env->pb_payload;
            pb->final = 1;
        }

        rc = amon_envelope_convert(
            &w->convert, max, &w->allocator, env, source, !env->binary);
    }

    if (rc != AMON_OK) {
        return NGX_ERROR;
    }

    out->data = w->convert.data;
    out->len = w->convert.len;

    return NGX_OK;
}


/*
 * An SDK's ack that cannot reach its panel as it is: in the panel's
 * encoding it passes amonitor_max_message_size (a protobuf message of
 * control characters is six times longer in JSON).  The panel still gets
 * the action's last reply: an ack written by the agent with the SDK's
 * msg_id, trace_id and success, and a message saying what was left out.
 * *out is in w->convert.
 */
ngx_int_t
ngx_http_amonitor_reply_ack_unfit(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_upstream_t *u,
    amon_envelope_t *env, ngx_uint_t binary, ngx_str_t *out)
{
    int            rc;
    u_char         ebuf[NGX_HTTP_AMONITOR_LOG_STR];
    ngx_str_t      id, e;
    amon_ack_out_t ack;

    id.data = (u_char *) env->action_msg_id.data;
    id.len = env->action_msg_id.len;

    ngx_log_error(NGX_LOG_WARN, &u->log, 0,
        "amonitor: the ack of action \"%V\" is too big for panel #%ui in "
        "its encoding: the panel gets it without its message",
        ngx_http_amonitor_log_str(&id, &e, ebuf, sizeof(ebuf)), panel->id);

    ngx_memzero(&ack, sizeof(amon_ack_out_t));

    ack.msg_id = env->msg_id;
    ack.trace_id = env->trace_id;
    ack.target_id.data = u->id.data;
    ack.target_id.len = u->id.len;
    ack.timestamp =
        env->has_timestamp ? env->timestamp : ngx_http_amonitor_reply_now();
    ack.action_msg_id = env->action_msg_id;
    ack.success = env->success;
    ngx_str_set(&ack.message, NGX_HTTP_AMONITOR_ACK_UNFIT);
    ack.final = AMON_FINAL_YES;

    w->convert.len = 0;

    rc = amon_envelope_build_ack(
        &w->convert, w->amcf->max_message, &w->allocator, &ack, (int) binary);

    if (rc != AMON_OK) {
        ngx_log_error(NGX_LOG_ERR, panel->connection->log, 0,
            "amonitor: an answer to panel #%ui could not be made: %s",
            panel->id, amon_strerror(rc));
        return NGX_ERROR;
    }

    out->data = w->convert.data;
    out->len = w->convert.len;

    return NGX_OK;
}


/* does the SDK name itself otherwise than the agent does? */
static ngx_uint_t
ngx_http_amonitor_reply_foreign(
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env)
{
    return env->target_id.len != u->id.len
        || ngx_memcmp(env->target_id.data, u->id.data, u->id.len) != 0
        || (env->payload_target_id.len
            && (env->payload_target_id.len != u->id.len
                || ngx_memcmp(
                       env->payload_target_id.data, u->id.data, u->id.len)
                    != 0));
}


static ngx_int_t
ngx_http_amonitor_reply_stamp_json(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_uint_t source, ngx_uint_t final, size_t max, ngx_str_t *out)
{
    u_char     *p, *last, *pay;
    amon_buf_t *b;

    static u_char final_true[] = "\"final\":true,";

    b = &w->scratch;
    p = data;
    last = data + len;

    while (p < last && *p != '{') {
        p++;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    p++;

    /* room for the input and "final": one reservation, plain copies */
    if (amon_buf_reserve(b, len + sizeof(final_true), max, &w->allocator)
        != AMON_OK) {
        return NGX_ERROR;
    }

    b->len = ngx_cpymem(b->data + b->len, data, p - data) - b->data;

    if (source) {
        if (ngx_http_amonitor_reply_append(w, (u_char *) "\"source\":", 9, max)
                != NGX_OK
            || amon_json_append_string(b, max, &w->allocator,
                   (amon_str_t) ngx_http_amonitor_amon_str(&u->id))
                != AMON_OK
            || ngx_http_amonitor_reply_append(w, (u_char *) ",", 1, max)
                != NGX_OK
            || amon_buf_reserve(
                   b, (last - p) + sizeof(final_true), max, &w->allocator)
                != AMON_OK) {
            return NGX_ERROR;
        }
    }

    if (final && env->has_payload) {
        /* the payload's text is a part of the input */
        pay = (u_char *) env->payload.data + 1;

        b->len = ngx_cpymem(b->data + b->len, p, pay - p) - b->data;
        p = pay;

        while (pay < last
            && (*pay == ' ' || *pay == '\t' || *pay == '\r' || *pay == '\n')) {
            pay++;
        }

        /* with its comma unless the payload was empty */
        b->len = ngx_cpymem(b->data + b->len, final_true,
                     sizeof(final_true) - 1 - (*pay == '}'))
            - b->data;
    }

    b->len = ngx_cpymem(b->data + b->len, p, last - p) - b->data;

    out->data = b->data;
    out->len = b->len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_amonitor_reply_stamp_pb(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, amon_envelope_t *env, u_char *data,
    size_t len, ngx_uint_t source, ngx_uint_t final, size_t max, ngx_str_t *out)
{
    amon_ack_out_t ack;

    if (final) {
        ngx_memzero(&ack, sizeof(amon_ack_out_t));

        ack.msg_id = env->msg_id;
        ack.trace_id = env->trace_id;
        ack.target_id = env->target_id;
        ack.timestamp =
            env->has_timestamp ? env->timestamp : AMON_TIMESTAMP_NONE;
        ack.action_msg_id = env->action_msg_id;
        ack.success = env->success;
        ack.message = env->message;
        ack.final = AMON_FINAL_YES;

        if (amon_envelope_build_ack(&w->scratch, max, &w->allocator, &ack, 1)
            != AMON_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_amonitor_reply_append(w, data, len, max) != NGX_OK) {
        return NGX_ERROR;
    }

    if (source
        && ngx_http_amonitor_reply_pb_source(w, &w->scratch, u, max)
            != AMON_OK) {
        return NGX_ERROR;
    }

    out->data = w->scratch.data;
    out->len = w->scratch.len;

    return NGX_OK;
}


/* Envelope.source = 7, appended to "b": a field may follow the others */
static int
ngx_http_amonitor_reply_pb_source(ngx_http_amonitor_worker_t *w, amon_buf_t *b,
    ngx_http_amonitor_upstream_t *u, size_t max)
{
    u_char *p, hdr[16];

    p = hdr;
    *p++ = (7 << 3) | 2;
    p = ngx_http_amonitor_reply_varint(p, u->id.len);

    if (amon_buf_reserve(b, (p - hdr) + u->id.len, max, &w->allocator)
        != AMON_OK) {
        return AMON_ETOOBIG;
    }

    b->len = ngx_cpymem(ngx_cpymem(b->data + b->len, hdr, p - hdr), u->id.data,
                 u->id.len)
        - b->data;

    return AMON_OK;
}


static ngx_int_t
ngx_http_amonitor_reply_append(
    ngx_http_amonitor_worker_t *w, u_char *data, size_t len, size_t max)
{
    if (amon_buf_reserve(&w->scratch, len, max, &w->allocator) != AMON_OK) {
        return NGX_ERROR;
    }

    if (len) {
        ngx_memcpy(w->scratch.data + w->scratch.len, data, len);
        w->scratch.len += len;
    }

    return NGX_OK;
}


static u_char *
ngx_http_amonitor_reply_varint(u_char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (u_char) (v | 0x80);
        v >>= 7;
    }

    *p++ = (u_char) v;

    return p;
}


/*
 * A target went up or down (a message type old panels skip), as one shared
 * frame for every panel; NULL if it cannot be built.
 */
ngx_http_amonitor_msg_t *
ngx_http_amonitor_reply_target_status(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_upstream_t *u, const char *state, const char *reason)
{
    ngx_str_t out, r;

    r.data = (u_char *) reason;
    r.len = reason ? ngx_strlen(reason) : 0;

    if (ngx_http_amonitor_reply_target_state(w, &u->id, &u->norm,
            state[0] == 'u', ngx_http_amonitor_reply_now(), reason ? &r : NULL,
            &out)
        != NGX_OK) {
        return NULL;
    }

    return ngx_http_amonitor_msg_frame(
        &w->frames, AMON_WS_OP_TEXT, out.data, out.len, 0);
}


/*
 * A target_status with "since" (ms since the epoch) and "reason" (NULL:
 * none), written into the worker's scratch buffer; "out" points there.
 */
ngx_int_t
ngx_http_amonitor_reply_target_state(ngx_http_amonitor_worker_t *w,
    ngx_str_t *id, ngx_str_t *url, ngx_uint_t up, int64_t since,
    ngx_str_t *reason, ngx_str_t *out)
{
    u_char     uid[AMON_UUID_LEN];
    amon_str_t uuid, why;

    ngx_http_amonitor_reply_uuid(uid);

    uuid.data = uid;
    uuid.len = AMON_UUID_LEN;

    why.data = reason ? reason->data : NULL;
    why.len = reason ? reason->len : 0;

    w->scratch.len = 0;

    if (amon_envelope_build_target_state(&w->scratch, w->amcf->max_message,
            &w->allocator, uuid, (amon_str_t) ngx_http_amonitor_amon_str(id),
            ngx_http_amonitor_reply_now(), up ? "up" : "down",
            (amon_str_t) ngx_http_amonitor_amon_str(url), since, why)
        != AMON_OK) {
        return NGX_ERROR;
    }

    out->data = w->scratch.data;
    out->len = w->scratch.len;

    return NGX_OK;
}


void
ngx_http_amonitor_reply_uuid(u_char *out)
{
    u_char rnd[16];

    ngx_http_amonitor_random(rnd, sizeof(rnd));

    amon_uuid4(rnd, out);
}
