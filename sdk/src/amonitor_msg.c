/*
 * Copyright (C) AMonitor authors
 *
 * SDK messages: builds heartbeat, register, event and action_ack envelopes
 * (JSON or protobuf) with the core's encoders, and dispatches incoming
 * actions to the program's handlers.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amonitor_sdk_int.h"
#include "amon_envelope.h"


static int  amonitor_build_envelope(amonitor_sdk_priv_t *priv, amon_buf_t *out,
     const char *type, amon_str_t payload, int binary);
static void amonitor_send_ack(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action, int success, const char *message);
static amonitor_handler_t *amonitor_msg_handler(
    amonitor_sdk_priv_t *priv, const char *name);
static void        amonitor_msg_result(amonitor_sdk_priv_t *priv,
           amonitor_action_t *action, int fn2, int result, const char *message);
static const char *amonitor_copy(
    amonitor_sdk_priv_t *priv, amon_str_t s, size_t *off, const char *dflt);


int
amonitor_msg_heartbeat(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    int                rc;
    size_t             mark;
    amon_buf_t        *b;
    amon_str_t         payload;
    amon_json_w_t      w, head;
    amonitor_metrics_t m;

    b = &priv->scratch2;
    b->len = 0;

    amon_json_w_init(&w, b, priv->max_message, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "target_id");
    amon_json_w_cstring(&w, priv->target_id);
    amon_json_w_key(&w, "status");
    amon_json_w_cstring(&w, "up");
    amon_json_w_key(&w, "metrics");
    amon_json_w_object_begin(&w);

    if (amon_json_w_error(&w) != AMON_OK) {
        return AMONITOR_ERR_NOMEM;
    }

    head = w;
    mark = b->len;

    if (priv->metrics_fn) {
        /* the program adds members inside "metrics", on a budget */
        m.buf = b;
        m.start = mark;
        m.w = w;
        amon_json_w_limit(&m.w,
            mark + AMONITOR_METRICS_MAX < priv->max_message
                ? mark + AMONITOR_METRICS_MAX
                : priv->max_message);

        priv->cb_depth++;
        priv->metrics_fn(priv->ctx, &m, priv->metrics_data);
        priv->cb_depth--;

        w = m.w;
        amon_json_w_limit(&w, priv->max_message);
    }

    amon_json_w_object_end(&w);
    amon_json_w_object_end(&w);

    if (amon_json_w_error(&w) != AMON_OK) {
        /* no room to close: the heartbeat goes without its metrics */
        w = head;
        b->len = mark;
        amon_json_w_object_end(&w);
        amon_json_w_object_end(&w);
    }

    if (amon_json_w_finish(&w) != AMON_OK) {
        return AMONITOR_ERR_NOMEM;
    }

    payload.data = b->data;
    payload.len = b->len;

    rc = amonitor_build_envelope(
        priv, &priv->scratch, "heartbeat", payload, priv->binary);
    if (rc != AMONITOR_OK) {
        amonitor_log(priv, AMONITOR_LOG_ERROR, "heartbeat not built: %s",
            amonitor_strerror(rc));
        return rc;
    }

    rc = amonitor_conn_send_frame(priv, c,
        priv->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, priv->scratch.data,
        priv->scratch.len, 1);

    if (rc == AMONITOR_OK) {
        amonitor_stat_inc(priv, heartbeats);
    }

    return rc;
}


int
amonitor_msg_register(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    int           rc;
    amon_buf_t   *b;
    amon_str_t    payload;
    amon_json_w_t w;

    b = &priv->scratch2;
    b->len = 0;

    amon_json_w_init(&w, b, priv->max_message, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "target_id");
    amon_json_w_cstring(&w, priv->target_id);
    amon_json_w_key(&w, "sdk_url");
    amon_json_w_cstring(&w, priv->register_url);
    amon_json_w_key(&w, "metadata");
    amon_json_w_raw(&w, priv->metadata_json, strlen(priv->metadata_json));
    amon_json_w_object_end(&w);

    rc = amon_json_w_finish(&w);
    if (rc != AMON_OK) {
        return rc == AMON_ENOMEM ? AMONITOR_ERR_NOMEM : AMONITOR_ERR_TOOBIG;
    }

    payload.data = b->data;
    payload.len = b->len;

    rc = amonitor_build_envelope(
        priv, &priv->scratch, "register", payload, priv->binary);
    if (rc != AMONITOR_OK) {
        amonitor_log(priv, AMONITOR_LOG_ERROR, "register not built: %s",
            amonitor_strerror(rc));
        return rc;
    }

    return amonitor_conn_send_frame(priv, c,
        priv->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, priv->scratch.data,
        priv->scratch.len, 0);
}


/*
 * Build an event envelope.  Runs on any thread: uses only its own buffers
 * and read-only configuration.  The JSON form is decoded again with the
 * core's decoder, the same validation the agent applies, so that data the
 * agent would refuse (bad UTF-8, too deep) is refused here.
 */
int
amonitor_msg_build_event(amonitor_sdk_priv_t *priv, amon_buf_t *out,
    const char *name, const char *json_data)
{
    int              rc;
    amon_buf_t       b;
    amon_str_t       payload;
    amon_json_w_t    w;
    amon_envelope_t *env;

    if (json_data == NULL) {
        json_data = "null";
    }

    if (strlen(json_data) > priv->max_message) {
        return AMONITOR_ERR_TOOBIG;
    }

    memset(&b, 0, sizeof(b));

    amon_json_w_init(&w, &b, priv->max_message, NULL);
    amon_json_w_object_begin(&w);
    amon_json_w_key(&w, "target_id");
    amon_json_w_cstring(&w, priv->target_id);
    amon_json_w_key(&w, "event_name");
    amon_json_w_cstring(&w, name);
    amon_json_w_key(&w, "data");
    amon_json_w_raw(&w, json_data, strlen(json_data));
    amon_json_w_object_end(&w);

    rc = amon_json_w_finish(&w);
    if (rc != AMON_OK) {
        amon_buf_free(&b, NULL);
        /* empty data is no JSON: refused as the envelope check would */
        return rc == AMON_ENOMEM ? AMONITOR_ERR_NOMEM
            : rc == AMON_EINVAL  ? AMONITOR_ERR_INVAL
                                 : AMONITOR_ERR_TOOBIG;
    }

    payload.data = b.data;
    payload.len = b.len;

    /* always build the JSON form first: it is what gets validated */
    rc = amonitor_build_envelope(priv, out, "event", payload, 0);

    if (rc == AMONITOR_OK) {
        env = malloc(sizeof(amon_envelope_t));
        if (env == NULL) {
            rc = AMONITOR_ERR_NOMEM;

        } else {
            if (amon_envelope_decode_json(env, out->data, out->len)
                != AMON_OK) {
                rc = AMONITOR_ERR_INVAL;
            }
            amon_envelope_release(env);
            free(env);
        }
    }

    if (rc == AMONITOR_OK && priv->binary) {
        out->len = 0;
        rc = amonitor_build_envelope(priv, out, "event", payload, 1);
    }

    amon_buf_free(&b, NULL);

    return rc;
}


/* Any thread: see amonitor_sdk_ack(). */
int
amonitor_msg_build_ack(amonitor_sdk_priv_t *priv, amon_buf_t *out,
    const char *action_msg_id, const char *trace_id, int success,
    const char *message, int binary)
{
    int            rc;
    unsigned char  rnd[16], id[AMON_UUID_LEN];
    amon_ack_out_t ack;

    if (amon_utf8_validate((const unsigned char *) message, strlen(message))
        != AMON_OK) {
        return AMONITOR_ERR_INVAL;
    }

    amon_posix_random(rnd, sizeof(rnd));
    amon_uuid4(rnd, id);

    memset(&ack, 0, sizeof(ack));
    ack.msg_id.data = id;
    ack.msg_id.len = sizeof(id);
    if (trace_id && trace_id[0]) {
        ack.trace_id = amonitor_cstr(trace_id);
    }
    ack.target_id = amonitor_cstr(priv->target_id);
    ack.timestamp = amon_posix_wall_ms();
    ack.action_msg_id = amonitor_cstr(action_msg_id);
    ack.success = success ? 1 : 0;
    ack.message = amonitor_cstr(message);

    out->len = 0;

    rc = amon_envelope_build_ack(out, priv->max_message, NULL, &ack, binary);
    if (rc != AMON_OK) {
        return rc == AMON_ENOMEM ? AMONITOR_ERR_NOMEM : AMONITOR_ERR_TOOBIG;
    }

    return AMONITOR_OK;
}


/* An envelope around "payload" (JSON text), as JSON or protobuf. */
static int
amonitor_build_envelope(amonitor_sdk_priv_t *priv, amon_buf_t *out,
    const char *type, amon_str_t payload, int binary)
{
    int                 rc;
    unsigned char       rnd[16], id[AMON_UUID_LEN];
    amon_envelope_out_t e;

    amon_posix_random(rnd, sizeof(rnd));
    amon_uuid4(rnd, id);

    memset(&e, 0, sizeof(e));
    e.msg_id.data = id;
    e.msg_id.len = sizeof(id);
    e.type = amonitor_cstr(type);
    e.target_id = amonitor_cstr(priv->target_id);
    e.timestamp = amon_posix_wall_ms();
    e.payload_json = payload;

    out->len = 0;

    if (binary) {
        /* the core converts the JSON payload by the envelope's type */
        rc = amon_envelope_build_pb(out, priv->max_message, NULL, &e);

    } else {
        rc = amon_envelope_build_json(out, priv->max_message, NULL, &e);
    }

    switch (rc) {
    case AMON_OK: return AMONITOR_OK;
    case AMON_ENOMEM: return AMONITOR_ERR_NOMEM;
    case AMON_ETOOBIG: return AMONITOR_ERR_TOOBIG;
    default: return AMONITOR_ERR_INVAL;
    }
}


/* A message into priv->env: AMONITOR_OK for an action, else released. */
static int
amonitor_msg_decode(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    unsigned opcode, unsigned char *p, size_t len)
{
    int              rc;
    amon_envelope_t *env;

    env = &priv->env;

    if (opcode == AMON_WS_OP_BINARY) {
        /* refuses a NUL in a string field, as JSON refuses "\u0000" */
        rc = amon_envelope_decode_pb(env, p, len, NULL);

    } else {
        rc = amon_envelope_decode_json(env, p, len);
    }

    if (rc != AMON_OK) {
        amonitor_stat_inc(priv, invalid);
        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu: message ignored: %s", (unsigned long long) c->id,
            amon_strerror(rc));
        amon_envelope_release(env);
        return AMONITOR_ERR_INVAL;
    }

    if (env->type != AMON_MSG_ACTION) {
        amonitor_log(priv, AMONITOR_LOG_DEBUG,
            "connection %llu: \"%.*s\" message ignored",
            (unsigned long long) c->id, (int) env->type_name.len,
            (const char *) env->type_name.data);
        amon_envelope_release(env);
        return AMONITOR_ERR_INVAL;
    }

    if (opcode == AMON_WS_OP_BINARY && env->params.len
        && amon_json_validate((const unsigned char *) env->params.data,
               env->params.len, AMON_MAX_JSON_DEPTH)
            != AMON_OK) {
        /* a JSON envelope with such params is refused whole: so is this */
        amonitor_stat_inc(priv, invalid);
        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu: action ignored: its params are not JSON "
            "nested at most %d deep",
            (unsigned long long) c->id, AMON_MAX_JSON_DEPTH);
        amon_envelope_release(env);
        return AMONITOR_ERR_INVAL;
    }

    if (env->action.len == 0) {
        /* no handler can be meant: as the agent, refused, not run */
        amonitor_stat_inc(priv, invalid);
        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu: action ignored: no payload.action",
            (unsigned long long) c->id);
        amon_envelope_release(env);
        return AMONITOR_ERR_INVAL;
    }

    return AMONITOR_OK;
}


/*
 * The action in priv->env as NUL-terminated copies of its fields, one
 * after another in priv->scratch2; releases priv->env.
 */
static int
amonitor_msg_action(amonitor_sdk_priv_t *priv, amonitor_action_t *action)
{
    size_t           off;
    amon_envelope_t *env;

    env = &priv->env;

    priv->scratch2.len = 0;
    off = 0;

    memset(action, 0, sizeof(*action));
    action->binary = env->binary;

    if (amon_buf_reserve(&priv->scratch2,
            env->action.len + env->params.len + env->msg_id.len
                + env->trace_id.len + env->target_id.len + env->target_url.len
                + 16,
            (size_t) -1 / 2, NULL)
        != AMON_OK) {
        amonitor_log(priv, AMONITOR_LOG_ERROR, "action: out of memory");
        amon_envelope_release(env);
        return AMONITOR_ERR_NOMEM;
    }

    action->name = amonitor_copy(priv, env->action, &off, "");
    action->params = amonitor_copy(priv, env->params, &off, "{}");
    action->params_len = env->params.len ? env->params.len : 2;
    action->msg_id = amonitor_copy(priv, env->msg_id, &off, "");
    action->trace_id = amonitor_copy(priv, env->trace_id, &off, "");
    action->target_id = amonitor_copy(priv, env->target_id, &off, "");
    action->target_url = amonitor_copy(priv, env->target_url, &off, "");

    amon_envelope_release(env);

    return AMONITOR_OK;
}


/*
 * Runs "h"; registered before the call: the handler may ack elsewhere.
 * "h" is not used after the call: the handler may replace (free) it.
 */
static void
amonitor_msg_run(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    amonitor_action_t *action, amonitor_handler_t *h)
{
    int                 rc, result, fn2;
    amonitor_pending_t *pending;
    char                message[AMONITOR_MESSAGE_MAX];

    fn2 = (h->fn2 != NULL);

    rc = amonitor_pending_add(priv, c, action, fn2, &pending);
    if (rc != AMONITOR_OK) {
        amonitor_send_ack(priv, c, action, 0,
            rc == AMONITOR_ERR_FULL ? "too many pending actions"
                                    : "out of memory");
        return;
    }

    if (fn2) {
        action->pending = pending;
    }

    message[0] = '\0';

    priv->cb_depth++;
    if (fn2) {
        result = h->fn2(priv->ctx, action, message, sizeof(message), h->data);

    } else {
        result = h->fn(priv->ctx, action, message, sizeof(message), h->data);
    }
    priv->cb_depth--;

    message[sizeof(message) - 1] = '\0';

    amonitor_msg_result(priv, action, fn2, result, message);

    amonitor_pending_unref(pending); /* the dispatcher's reference */
}


void
amonitor_msg_dispatch(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    unsigned opcode, unsigned char *p, size_t len)
{
    amonitor_action_t   action;
    amonitor_handler_t *h;
    char                message[AMONITOR_MESSAGE_MAX];

    if (c->state != AMONITOR_CONN_OPEN) {
        /* our close frame is out: no answer could follow it */
        return;
    }

    if (amonitor_msg_decode(priv, c, opcode, p, len) != AMONITOR_OK) {
        return;
    }

    amonitor_stat_inc(priv, actions);

    if (amonitor_msg_action(priv, &action) != AMONITOR_OK) {
        return;
    }

    amonitor_log(priv, AMONITOR_LOG_DEBUG, "action \"%s\" (%s) received",
        action.name, action.msg_id);

    action.conn_id = c->id;

    /* the same msg_id already pending: answer both, run the handler once */
    if (amonitor_pending_join(priv, c, &action) == AMONITOR_OK) {
        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu: action %s is already pending: it waits for "
            "the same answer",
            (unsigned long long) c->id, action.msg_id);
        return;
    }

    h = amonitor_msg_handler(priv, action.name);

    if (h == NULL) {
        snprintf(
            message, sizeof(message), "unsupported action: %s", action.name);
        amonitor_send_ack(priv, c, &action, 0, message);
        return;
    }

    amonitor_msg_run(priv, c, &action, h);
}


static amonitor_handler_t *
amonitor_msg_handler(amonitor_sdk_priv_t *priv, const char *name)
{
    amonitor_handler_t *h, *fallback;

    fallback = NULL;

    for (h = priv->handlers; h; h = h->next) {
        if (h->name == NULL) {
            fallback = h;

        } else if (strcmp(h->name, name) == 0) {
            return h;
        }
    }

    return fallback;
}


/* What the handler returned: answer now, or leave the action pending. */
static void
amonitor_msg_result(amonitor_sdk_priv_t *priv, amonitor_action_t *action,
    int fn2, int result, const char *message)
{
    int                 success;
    amonitor_pending_t *p;

    p = action->pending;

    if (fn2) {
        if (result == AMONITOR_REPLY_LATER) {
            if (message[0]) {
                amonitor_log(priv, AMONITOR_LOG_WARN,
                    "action \"%s\": message written before "
                    "AMONITOR_REPLY_LATER is not sent",
                    action->name);
            }
            return;
        }

        if (result == AMONITOR_REPLY_SUCCESS
            || result == AMONITOR_REPLY_FAILURE) {
            success = (result == AMONITOR_REPLY_SUCCESS);

        } else {
            amonitor_log(priv, AMONITOR_LOG_ERROR,
                "action \"%s\": handler returned %d, not an "
                "AMONITOR_REPLY_* code",
                action->name, result);
            success = 0;
            message = "handler returned an invalid result";
        }

        if (amonitor_pending_take_handle(p, 1) != AMONITOR_OK) {
            return; /* the handler already answered */
        }

    } else {
        if (result == AMONITOR_ACTION_PENDING) {
            return;
        }

        success = (result == AMONITOR_ACTION_OK);

        p = amonitor_pending_take(priv, action->msg_id);
        if (p == NULL) {
            return; /* the handler already called amonitor_sdk_ack() */
        }
    }

    (void) amonitor_msg_answer(priv, p, success, message);
    amonitor_pending_finish(p);
}


static void
amonitor_send_ack(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const amonitor_action_t *action, int success, const char *message)
{
    int  rc;
    char text[AMONITOR_MESSAGE_MAX];

    (void) amonitor_ack_text(message, text, sizeof(text));

    rc = amonitor_msg_build_ack(priv, &priv->scratch, action->msg_id,
        action->trace_id, success, text, action->binary);

    if (rc != AMONITOR_OK) {
        amonitor_log(priv, AMONITOR_LOG_ERROR, "ack not built: %s",
            amonitor_strerror(rc));
        return;
    }

    if (amonitor_conn_send_frame(priv, c,
            action->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT,
            priv->scratch.data, priv->scratch.len, 0)
        == AMONITOR_OK) {
        amonitor_stat_inc(priv, acks);
    }
}


static const char *
amonitor_copy(
    amonitor_sdk_priv_t *priv, amon_str_t s, size_t *off, const char *dflt)
{
    char *p;

    if (s.data == NULL || s.len == 0) {
        return dflt;
    }

    p = (char *) priv->scratch2.data + *off;
    memcpy(p, s.data, s.len);
    p[s.len] = '\0';
    *off += s.len + 1;

    return p;
}


/*
 * A ready frame for one connection, if it is still open: an ack (never
 * dropped for a slow agent; counted in acks or acks_dropped) or an event.
 */
void
amonitor_msg_send(amonitor_sdk_priv_t *priv, uint64_t conn_id, unsigned opcode,
    const unsigned char *p, size_t len, int ack)
{
    amonitor_conn_t *c;

    for (c = priv->conns; c; c = c->next) {
        if (c->id == conn_id) {
            break;
        }
    }

    if (c && c->state == AMONITOR_CONN_OPEN
        && amonitor_conn_send_frame(priv, c, opcode, p, len, !ack)
            == AMONITOR_OK) {
        if (ack) {
            amonitor_stat_inc(priv, acks);

        } else {
            amonitor_stat_inc(priv, events);
        }
        return;
    }

    if (ack) {
        amonitor_stat_inc(priv, acks_dropped);
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "ack dropped: agent connection %llu is gone",
            (unsigned long long) conn_id);
    }
}


/*
 * On the loop's thread: answer a taken pending action at once, one ack
 * per waiting connection, in the encoding and with the trace_id of the
 * action each sent, under amonitor_ack_text()'s message rule.
 */
int
amonitor_msg_answer(amonitor_sdk_priv_t *priv, amonitor_pending_t *p,
    int success, const char *message)
{
    int                rc, err;
    amonitor_waiter_t *w;
    char               text[AMONITOR_MESSAGE_MAX];

    if (amonitor_ack_text(message ? message : "", text, sizeof(text))
        != AMONITOR_OK) {
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "action %s: ack message is not UTF-8, replaced", p->msg_id);
    }

    err = AMONITOR_OK;

    for (w = p->waiters; w; w = w->next) {
        rc = amonitor_msg_build_ack(priv, &priv->scratch, p->msg_id,
            w->trace_id, success, text, w->binary);
        if (rc != AMONITOR_OK) {
            err = rc;
            continue;
        }

        amonitor_msg_send(priv, w->conn_id,
            w->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, priv->scratch.data,
            priv->scratch.len, 1);
    }

    return err;
}
