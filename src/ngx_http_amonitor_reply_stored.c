/*
 * Copyright (C) AMonitor authors
 *
 * The agent's answers made of what the dedupe store keeps: the duplicate
 * ack of a repeated msg_id and the answer to action_status, the form of
 * the record the store keeps (the target's name, then the result) and of
 * the result itself.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"


static ngx_uint_t ngx_http_amonitor_reply_stored(
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
    ngx_str_t *stored, ngx_str_t *result);
static void ngx_http_amonitor_reply_unusable(
    ngx_http_amonitor_conn_t *panel, int rc);
static ngx_uint_t ngx_http_amonitor_reply_success(ngx_str_t *result);


/*
 * The agent's answer to a repeated msg_id, never forwarded to the SDK:
 * what is known of the first attempt ("state": done, pending or failed,
 * its target and its stored result); "success" only when the stored
 * result says so.  "stored": the store's record (stored_pack), or NULL.
 * "final": AMON_FINAL_NO when the first attempt's own final answer is
 * still to come to this panel.
 */
void
ngx_http_amonitor_reply_duplicate(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
    const char *state, ngx_str_t *stored, ngx_uint_t final)
{
    int            rc;
    u_char         id[AMON_UUID_LEN];
    ngx_str_t      res, *original;
    ngx_uint_t     withheld;
    amon_ack_out_t ack;

    withheld = ngx_http_amonitor_reply_stored(panel, about, stored, &res);
    original = &res;

    ngx_http_amonitor_reply_uuid(id);

    ngx_memzero(&ack, sizeof(amon_ack_out_t));

    ack.msg_id.data = id;
    ack.msg_id.len = AMON_UUID_LEN;
    ack.trace_id = ngx_http_amonitor_amon_opt(&about->trace_id);
    ack.target_id = ngx_http_amonitor_amon_opt(&about->target_id);
    ack.timestamp = ngx_http_amonitor_reply_now();
    ack.action_msg_id = ngx_http_amonitor_amon_opt(&about->msg_id);
    ack.duplicate = 1;
    ack.state.data = (const unsigned char *) state;
    ack.state.len = ngx_strlen(state);
    ack.final = (int) final;

    if (original && original->len) {
        ack.original.data = original->data;
        ack.original.len = original->len;
        ack.success = ngx_http_amonitor_reply_success(original);
    }

    if (withheld) {
        ngx_str_set(&ack.message,
            "duplicate ignored: the first attempt was on a target this "
            "panel's token may not act on, its result is not given");

    } else if (ngx_strcmp(state, "done") == 0) {
        ngx_str_set(&ack.message, "duplicate ignored");

    } else if (ngx_strcmp(state, "pending") == 0) {
        ngx_str_set(&ack.message,
            "duplicate ignored: the first attempt is still pending");
        ack.success = 0;

    } else {
        ngx_str_set(
            &ack.message, "duplicate ignored: the first attempt failed");
        ack.success = 0;
    }

    w->scratch.len = 0;

    rc = amon_envelope_build_ack(
        &w->scratch, w->amcf->max_message, &w->allocator, &ack, about->binary);

    if (rc != AMON_OK && ack.original.len) {
        /* a stored result that cannot be used (Redis holds any bytes) */
        ngx_http_amonitor_reply_unusable(panel, rc);
        ack.original.data = NULL;
        ack.original.len = 0;
        ack.success = 0;
        w->scratch.len = 0;
        rc = amon_envelope_build_ack(&w->scratch, w->amcf->max_message,
            &w->allocator, &ack, about->binary);
    }

    ngx_http_amonitor_reply_send(w, panel, about, rc);
}


/* the answer to an action_status query: what the store knows */
void
ngx_http_amonitor_reply_status(ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_conn_t *panel, ngx_http_amonitor_about_t *about,
    ngx_str_t *action_msg_id, const char *state, ngx_str_t *stored)
{
    int                 rc;
    ngx_str_t           r, *result;
    amon_str_t          res;
    amon_envelope_out_t head;

    (void) ngx_http_amonitor_reply_stored(panel, about, stored, &r);
    result = &r;

    ngx_memzero(&head, sizeof(amon_envelope_out_t));

    head.msg_id = ngx_http_amonitor_amon_opt(&about->msg_id);
    head.trace_id = ngx_http_amonitor_amon_opt(&about->trace_id);
    head.target_id = ngx_http_amonitor_amon_opt(&about->target_id);
    head.timestamp = ngx_http_amonitor_reply_now();

    res.data = (result && result->len) ? result->data : NULL;
    res.len = result ? result->len : 0;

    for (;;) {
        w->scratch.len = 0;

        rc = amon_envelope_build_action_status(&w->scratch,
            w->amcf->max_message, &w->allocator, &head,
            (amon_str_t) ngx_http_amonitor_amon_str(action_msg_id), state, res,
            about->binary);

        if (rc == AMON_OK || res.len == 0) {
            break;
        }

        ngx_http_amonitor_reply_unusable(panel, rc);
        res.data = NULL;
        res.len = 0;
    }

    ngx_http_amonitor_reply_send(w, panel, about, rc);
}


/*
 * What the store keeps of an ended action: "\1", the length of its
 * target's name (two bytes, big-endian), the name, then its result.  A
 * name longer than AMON_MAX_ID_LEN is left out (length 0), and so is a
 * result longer than NGX_HTTP_AMONITOR_RESULT_MAX.  "out" has room for
 * NGX_HTTP_AMONITOR_STORED_MAX bytes.
 */
void
ngx_http_amonitor_stored_pack(
    ngx_str_t *out, ngx_str_t *target, ngx_str_t *result)
{
    u_char *p;
    size_t  n;

    n = (target && target->len <= AMON_MAX_ID_LEN) ? target->len : 0;

    p = out->data;
    *p++ = '\1';
    *p++ = (u_char) (n >> 8);
    *p++ = (u_char) n;

    if (n) {
        p = ngx_cpymem(p, target->data, n);
    }

    if (result && result->len <= NGX_HTTP_AMONITOR_RESULT_MAX) {
        p = ngx_cpymem(p, result->data, result->len);
    }

    out->len = p - out->data;
}


/*
 * A stored record's target name (empty: not known) and result.  A record
 * written before the name was kept (by an older agent sharing Redis, or
 * kept in the zone across the reload that brought this one) is the result
 * alone: a result is JSON text, which never starts with "\1".
 */
void
ngx_http_amonitor_stored_unpack(
    ngx_str_t *stored, ngx_str_t *target, ngx_str_t *result)
{
    size_t n;

    if (stored->len >= 3 && stored->data[0] == '\1') {
        n = ((size_t) stored->data[1] << 8) | stored->data[2];

        if (n <= stored->len - 3) {
            target->data = stored->data + 3;
            target->len = n;
            result->data = stored->data + 3 + n;
            result->len = stored->len - 3 - n;
            return;
        }
    }

    ngx_str_null(target);
    *result = *stored;
}


/*
 * A stored record as a panel may see it: the answer names the target the
 * action went to (a repeat may name another one), and its result is kept
 * from a token whose targets= does not cover that target (or when the
 * target is not known).  1 when a result was kept back.
 */
static ngx_uint_t
ngx_http_amonitor_reply_stored(ngx_http_amonitor_conn_t *panel,
    ngx_http_amonitor_about_t *about, ngx_str_t *stored, ngx_str_t *result)
{
    ngx_str_t                   target;
    ngx_http_amonitor_rights_t *rights;

    if (stored == NULL || stored->len == 0) {
        ngx_str_null(result);
        return 0;
    }

    ngx_http_amonitor_stored_unpack(stored, &target, result);

    rights = panel->rights;

    if (target.len == 0) {
        /* no name kept: only a token without targets= sees the result */
        if (rights == NULL || rights->targets == NULL) {
            return 0;
        }

    } else if (ngx_http_amonitor_rights_cover(rights, &target)) {
        about->target_id = target;
        return 0;
    }

    if (result->len == 0) {
        return 0;
    }

    result->len = 0;

    return 1;
}


/*
 * A stored result (from the zone or Redis) that cannot go into an answer:
 * not JSON, not UTF-8 or too big.  The answer goes without it.
 */
static void
ngx_http_amonitor_reply_unusable(ngx_http_amonitor_conn_t *panel, int rc)
{
    ngx_log_error(NGX_LOG_WARN, panel->connection->log, 0,
        "amonitor: a stored action result cannot be sent (%s): the answer "
        "to panel #%ui goes without it",
        amon_strerror(rc), panel->id);
}


/* "success" of a stored result: a JSON object with "success":true */
static ngx_uint_t
ngx_http_amonitor_reply_success(ngx_str_t *result)
{
    amon_envelope_t env;
    u_char          buf[NGX_HTTP_AMONITOR_RESULT_MAX + 64];
    u_char         *p;

    /* read it as an ack's payload: wrap it in a minimal envelope */
    if (result->len > NGX_HTTP_AMONITOR_RESULT_MAX) {
        return 0;
    }

    p = ngx_cpymem(buf,
        "{\"msg_id\":\"r\",\"type\":\"action_ack\",\"payload\":",
        sizeof("{\"msg_id\":\"r\",\"type\":\"action_ack\",\"payload\":") - 1);
    p = ngx_cpymem(p, result->data, result->len);
    *p++ = '}';

    if (amon_envelope_decode_json(&env, buf, p - buf) != AMON_OK) {
        return 0;
    }

    return env.has_success && env.success;
}


/*
 * The result kept in the store for an action when the ack's payload itself
 * cannot be (protobuf, or over the room), written into "result" (whose data
 * has room for "size" bytes): {"action_msg_id":I,"success":B,"message":S},
 * or for an error {"success":false,"code":C,"message":S}.  A message too
 * long for the room is left out of an ack's result; an error's result is
 * then empty (not stored).
 */
void
ngx_http_amonitor_reply_result(ngx_str_t *result, size_t size,
    ngx_uint_t success, amon_str_t message, const char *code,
    amon_str_t action_msg_id)
{
    amon_buf_t b;

    /* with the message if it fits, else without (never for an error) */
    b.data = result->data;
    b.len = 0;
    b.cap = size;

    if (amon_envelope_build_action_result(
            &b, size, NULL, action_msg_id, success, code, &message)
        == AMON_OK) {
        result->len = b.len;
        return;
    }

    b.len = 0;

    if (code == NULL
        && amon_envelope_build_action_result(
               &b, size, NULL, action_msg_id, success, NULL, NULL)
            == AMON_OK) {
        result->len = b.len;
        return;
    }

    result->len = 0;
}


/*
 * What the store keeps of an action ended by an error that may have let
 * it run (kept as FAILED): the same bytes whichever worker writes them,
 * the one that asked or, in a cluster, the one that ran it.  "stored"
 * has room for NGX_HTTP_AMONITOR_STORED_MAX bytes; NGX_DECLINED when the
 * message does not fit (nothing to keep).
 */
ngx_int_t
ngx_http_amonitor_stored_error(
    ngx_str_t *stored, ngx_str_t *target, const char *code, const char *message)
{
    u_char     buf[256];
    ngx_str_t  result;
    amon_str_t msg;

    msg.data = (const unsigned char *) message;
    msg.len = ngx_strlen(message);
    result.data = buf;

    ngx_http_amonitor_reply_result(
        &result, sizeof(buf), 0, msg, code, (amon_str_t) amon_null_string);

    if (result.len == 0) {
        return NGX_DECLINED;
    }

    ngx_http_amonitor_stored_pack(stored, target, &result);

    return NGX_OK;
}
