/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor send" (one action, wait for its ack) and "amonitor
 * dedupe-check" (the same msg_id twice, the second must be answered
 * "duplicate ignored").
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "amoncli.h"


#define AMONCLI_SEND_TIMEOUT 20.0


typedef enum {
    AMONCLI_WAIT_ACK = 1,
    AMONCLI_WAIT_ERROR,
    AMONCLI_WAIT_TIMEOUT,
    AMONCLI_WAIT_CLOSED
} amoncli_wait_e;


typedef struct {
    unsigned   opcode;
    amon_buf_t raw; /* the matching message */
    int        success;
    int        duplicate;
    char      *message; /* ack message or error message */
    char      *code; /* error code */
    char       err[256]; /* why the connection ended */
} amoncli_reply_t;


static int  amoncli_send_action(amoncli_ws_t *ws, const amoncli_opts_t *o,
     const char *msg_id, const char *params);
static int  amoncli_wait_reply(amoncli_ws_t *ws, const amoncli_opts_t *o,
     const char *msg_id, int64_t deadline, amoncli_reply_t *r);
static int  amoncli_reply_match(const amoncli_opts_t *o,
     const amon_envelope_t *env, const char *msg_id, amoncli_reply_t *r);
static void amoncli_reply_keep(amoncli_reply_t *r, const amon_envelope_t *env,
    unsigned opcode, const unsigned char *p, size_t len);
static void amoncli_reply_free(amoncli_reply_t *r);
static int  amoncli_dedupe_send(
     amoncli_ws_t *ws, const amoncli_opts_t *o, const char *msg_id, int attempt);
static int amoncli_dedupe_no_ack(
    const amoncli_opts_t *o, const char *msg_id, int what, amoncli_reply_t *r);
static int  amoncli_dedupe_verdict(const amoncli_opts_t *o, amoncli_reply_t *r);
static int  amoncli_report(const amoncli_opts_t *o, const char *cmd,
     const char *msg_id, int what, amoncli_reply_t *r);
static void amoncli_result_line(
    const amoncli_opts_t *o, const char *event, const char *msg_id);


int
amoncli_cmd_send(amoncli_opts_t *o)
{
    int             what;
    char            id[AMON_UUID_LEN + 1];
    const char     *msg_id;
    int64_t         deadline;
    amoncli_ws_t    ws;
    amoncli_reply_t r;

    if (o->ntarget_ids == 0 && o->ntarget_urls == 0) {
        fprintf(
            stderr, "amonitor send: --target-id or --target-url is required\n");
        return AMONCLI_EXIT_USAGE;
    }

    if (o->ntarget_ids > 1 || o->ntarget_urls > 1) {
        fprintf(stderr, "amonitor send: give one target\n");
        return AMONCLI_EXIT_USAGE;
    }

    if (o->timeout < 0) {
        o->timeout = AMONCLI_SEND_TIMEOUT;
    }

    amon_posix_uuid4(id);
    msg_id = o->msg_id ? o->msg_id : id;

    deadline = amon_posix_now_ms() + (int64_t) (o->timeout * 1000);

    if (amoncli_connect(&ws, o, (int) (o->timeout * 1000)) != 0) {
        return AMONCLI_EXIT_RUNTIME;
    }

    if (amoncli_send_action(&ws, o, msg_id,
            o->params ? o->params : "{\"from\":\"amonitor-send\"}")
        != 0) {
        fprintf(stderr, "amonitor send: cannot send the action\n");
        amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);
        return AMONCLI_EXIT_RUNTIME;
    }

    what = amoncli_wait_reply(&ws, o, msg_id, deadline, &r);

    amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

    return amoncli_report(o, "send", msg_id, what, &r);
}


int
amoncli_cmd_dedupe(amoncli_opts_t *o)
{
    int             what;
    char            id[AMON_UUID_LEN + 1];
    const char     *msg_id;
    int64_t         deadline;
    amoncli_ws_t    ws;
    amoncli_reply_t r;

    if (o->ntarget_ids > 1 || o->ntarget_urls > 1) {
        fprintf(stderr, "amonitor dedupe-check: give one target\n");
        return AMONCLI_EXIT_USAGE;
    }

    if (o->ntarget_ids == 0 && o->ntarget_urls == 0) {
        o->target_ids[o->ntarget_ids++] = "demo-target-a";
    }

    if (o->timeout < 0) {
        o->timeout = AMONCLI_SEND_TIMEOUT;
    }

    amon_posix_uuid4(id);
    msg_id = o->msg_id ? o->msg_id : id;

    deadline = amon_posix_now_ms() + (int64_t) (o->timeout * 1000);

    if (amoncli_connect(&ws, o, (int) (o->timeout * 1000)) != 0) {
        return AMONCLI_EXIT_RUNTIME;
    }

    /* first: a normal action that must be acked */
    if (amoncli_dedupe_send(&ws, o, msg_id, 1) != 0) {
        return AMONCLI_EXIT_RUNTIME;
    }

    what = amoncli_wait_reply(&ws, o, msg_id, deadline, &r);

    if (what != AMONCLI_WAIT_ACK) {
        amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);
        return amoncli_dedupe_no_ack(o, msg_id, what, &r);
    }

    if (o->verbose || o->json) {
        amoncli_print_message(o, "first", r.opcode, r.raw.data, r.raw.len);
    }

    amoncli_reply_free(&r);

    /* second: the same msg_id, different params */
    if (amoncli_dedupe_send(&ws, o, msg_id, 2) != 0) {
        return AMONCLI_EXIT_RUNTIME;
    }

    deadline = amon_posix_now_ms() + (int64_t) (o->timeout * 1000);
    what = amoncli_wait_reply(&ws, o, msg_id, deadline, &r);

    amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

    if (what != AMONCLI_WAIT_ACK) {
        return amoncli_dedupe_no_ack(o, msg_id, what, &r);
    }

    return amoncli_dedupe_verdict(o, &r);
}


/*
 * dedupe-check's first or second action (same msg_id, params telling
 * them apart); when it cannot be sent, says so and closes "ws".
 */
static int
amoncli_dedupe_send(
    amoncli_ws_t *ws, const amoncli_opts_t *o, const char *msg_id, int attempt)
{
    if (amoncli_send_action(ws, o, msg_id,
            attempt == 1 ? "{\"from\":\"amonitor-dedupe-check\",\"attempt\":1}"
                         : "{\"from\":\"amonitor-dedupe-check\",\"attempt\":2}")
        == 0) {
        return 0;
    }

    fprintf(stderr, "amonitor dedupe-check: cannot send the action\n");
    amoncli_ws_close(ws, AMON_WS_CLOSE_NORMAL);

    return -1;
}


/* No ack for an attempt: what came instead, and never exit 0. */
static int
amoncli_dedupe_no_ack(
    const amoncli_opts_t *o, const char *msg_id, int what, amoncli_reply_t *r)
{
    int rc;

    rc = amoncli_report(o, "dedupe-check", msg_id, what, r);

    return rc == AMONCLI_EXIT_OK ? AMONCLI_EXIT_RUNTIME : rc;
}


/* The ack of the second action must say "duplicate ignored". */
static int
amoncli_dedupe_verdict(const amoncli_opts_t *o, amoncli_reply_t *r)
{
    if (r->message && strstr(r->message, "duplicate ignored")) {
        if (o->json) {
            amoncli_print_json_line("dedupe_ok", "ack", r->raw.data, r->raw.len,
                r->opcode == AMON_WS_OP_BINARY);

        } else {
            printf("dedupe_ok\n");
        }

        amoncli_reply_free(r);
        return AMONCLI_EXIT_OK;
    }

    if (o->json) {
        amoncli_print_json_line("dedupe_failed", "ack", r->raw.data, r->raw.len,
            r->opcode == AMON_WS_OP_BINARY);

    } else {
        printf("dedupe_failed\n");
    }

    fprintf(stderr,
        "amonitor dedupe-check: the second action was not answered "
        "\"duplicate ignored\" (message: \"%s\")\n",
        r->message ? r->message : "");

    amoncli_reply_free(r);

    return AMONCLI_EXIT_RUNTIME;
}


static int
amoncli_send_action(amoncli_ws_t *ws, const amoncli_opts_t *o,
    const char *msg_id, const char *params)
{
    int        rc;
    amon_buf_t b;

    memset(&b, 0, sizeof(b));

    rc = amoncli_build_action(&b, msg_id,
        o->ntarget_ids ? o->target_ids[0] : NULL,
        o->ntarget_urls ? o->target_urls[0] : NULL,
        o->action ? o->action : "restart", params, o->binary);

    if (rc != AMON_OK) {
        fprintf(stderr, "amonitor: cannot build the action: %s\n",
            amon_strerror(rc));
        amon_buf_free(&b, NULL);
        return -1;
    }

    if (o->verbose) {
        amoncli_print_message(o, "sent",
            o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, b.data, b.len);
    }

    rc = amoncli_ws_send(ws, o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT,
        b.data, b.len, 5000);

    amon_buf_free(&b, NULL);

    return rc;
}


/*
 * Is the decoded "env" the answer to "msg_id"?  AMONCLI_WAIT_ACK or
 * AMONCLI_WAIT_ERROR with its fields copied into "r", or 0 (a progress
 * notice is said on stderr and is not the answer).
 */
static int
amoncli_reply_match(const amoncli_opts_t *o, const amon_envelope_t *env,
    const char *msg_id, amoncli_reply_t *r)
{
    if (env->type == AMON_MSG_ACTION_ACK
        && amoncli_str_eq(env->action_msg_id, msg_id)) {
        r->success = env->success;
        r->message =
            strndup(env->message.data ? (const char *) env->message.data : "",
                env->message.len);
        return AMONCLI_WAIT_ACK;
    }

    if (env->type != AMON_MSG_ERROR || !amoncli_str_eq(env->msg_id, msg_id)) {
        return 0;
    }

    if (env->has_final && !env->final) {
        /* a progress notice (ACK_TIMEOUT): the final answer follows */
        if (!o->json) {
            amoncli_tprintf(stderr,
                "amonitor: %.*s: %.*s (still waiting for the final "
                "answer)\n",
                (int) env->code.len, (const char *) env->code.data,
                (int) env->message.len, (const char *) env->message.data);
        }
        return 0;
    }

    r->code = strndup(
        env->code.data ? (const char *) env->code.data : "", env->code.len);
    r->message =
        strndup(env->message.data ? (const char *) env->message.data : "",
            env->message.len);

    return AMONCLI_WAIT_ERROR;
}


/*
 * Read until the action_ack for "msg_id" or an error envelope carrying
 * that msg_id arrives, the deadline passes or the connection ends.
 */
static int
amoncli_wait_reply(amoncli_ws_t *ws, const amoncli_opts_t *o,
    const char *msg_id, int64_t deadline, amoncli_reply_t *r)
{
    int                  rc, what;
    size_t               len;
    unsigned             opcode;
    int64_t              now;
    amon_envelope_t     *env;
    const unsigned char *p;

    memset(r, 0, sizeof(*r));

    env = malloc(sizeof(amon_envelope_t));
    if (env == NULL) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return AMONCLI_WAIT_CLOSED;
    }

    for (;;) {
        now = amon_posix_now_ms();
        if (now >= deadline || amoncli_interrupted) {
            what = AMONCLI_WAIT_TIMEOUT;
            break;
        }

        rc = amoncli_ws_recv(ws, (int) (deadline - now), &opcode, &p, &len,
            r->err, sizeof(r->err));

        if (rc == 0) {
            continue;
        }

        if (rc < 0) {
            what = AMONCLI_WAIT_CLOSED;
            break;
        }

        what = 0;

        if (amoncli_decode(env, opcode, p, len) == AMON_OK) {
            what = amoncli_reply_match(o, env, msg_id, r);
            if (what) {
                amoncli_reply_keep(r, env, opcode, p, len);
            }
        }

        amon_envelope_release(env);

        if (what == 0) {
            if (o->verbose) {
                amoncli_print_message(o, "recv", opcode, p, len);
            }
            continue;
        }

        break;
    }

    free(env);

    return what;
}


/*
 * Keep the answer as JSON text, a protobuf one converted by the core (as
 * the agent converts for a JSON panel), so that "ack_matched <the ack>"
 * and the --json lines show JSON whichever encoding the answer came in.
 * Kept as it came when it cannot be converted.
 */
static void
amoncli_reply_keep(amoncli_reply_t *r, const amon_envelope_t *env,
    unsigned opcode, const unsigned char *p, size_t len)
{
    int rc;

    r->raw.len = 0;

    if (opcode == AMON_WS_OP_BINARY) {
        rc = amon_envelope_convert(&r->raw, 4 * AMONCLI_MAX_MESSAGE, NULL, env,
            (amon_str_t) amon_null_string, 0);

        if (rc == AMON_OK) {
            r->opcode = AMON_WS_OP_TEXT;
            return;
        }

        fprintf(stderr, "amonitor: cannot show the answer as JSON: %s\n",
            amon_strerror(rc));
        r->raw.len = 0;
    }

    r->opcode = opcode;

    if (amon_buf_reserve(&r->raw, len, AMONCLI_MAX_MESSAGE, NULL) == AMON_OK) {
        memcpy(r->raw.data, p, len);
        r->raw.len = len;
    }
}


static void
amoncli_reply_free(amoncli_reply_t *r)
{
    amon_buf_free(&r->raw, NULL);
    free(r->message);
    free(r->code);
    r->message = NULL;
    r->code = NULL;
}


static void
amoncli_result_line(
    const amoncli_opts_t *o, const char *event, const char *msg_id)
{
    cJSON *j;
    char  *s;

    if (!o->json) {
        printf("%s\n", event);
        return;
    }

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "event", event);
    cJSON_AddNumberToObject(j, "time", (double) amon_posix_wall_ms());
    cJSON_AddStringToObject(j, "msg_id", msg_id);
    s = cJSON_PrintUnformatted(j);
    if (s) {
        printf("%s\n", s);
    }
    cJSON_free(s);
    cJSON_Delete(j);
}


/* Print the outcome and turn it into an exit code. */
static int
amoncli_report(const amoncli_opts_t *o, const char *cmd, const char *msg_id,
    int what, amoncli_reply_t *r)
{
    int   rc;
    char *text;

    rc = AMONCLI_EXIT_RUNTIME;

    switch (what) {

    case AMONCLI_WAIT_ACK:
        if (o->json) {
            amoncli_print_json_line("ack_matched", "ack", r->raw.data,
                r->raw.len, r->opcode == AMON_WS_OP_BINARY);

        } else if (r->opcode == AMON_WS_OP_BINARY) {
            printf("ack_matched ");
            fflush(stdout);
            amoncli_print_message(
                o, "recv", r->opcode, r->raw.data, r->raw.len);

        } else {
            text = strndup((const char *) r->raw.data, r->raw.len);
            amoncli_tprintf(stdout, "ack_matched %s\n", text ? text : "");
            free(text);
        }

        if (r->success) {
            rc = AMONCLI_EXIT_OK;

        } else {
            amoncli_tprintf(stderr, "amonitor %s: action failed: %s\n", cmd,
                r->message ? r->message : "");
        }
        break;

    case AMONCLI_WAIT_ERROR:
        if (o->json) {
            amoncli_print_json_line("error", "error", r->raw.data, r->raw.len,
                r->opcode == AMON_WS_OP_BINARY);

        } else {
            amoncli_tprintf(stdout, "error %s %s\n", r->code ? r->code : "",
                r->message ? r->message : "");
        }

        amoncli_tprintf(stderr, "amonitor %s: agent error %s: %s\n", cmd,
            r->code ? r->code : "", r->message ? r->message : "");
        break;

    case AMONCLI_WAIT_TIMEOUT:
        amoncli_result_line(o, "ack_timeout", msg_id);
        amoncli_tprintf(stderr,
            "amonitor %s: no ack for msg_id %s within %gs\n", cmd, msg_id,
            o->timeout);
        break;

    default:
        amoncli_result_line(o, "connection_closed", msg_id);
        amoncli_tprintf(stderr, "amonitor %s: %s\n", cmd, r->err);
        break;
    }

    amoncli_reply_free(r);

    return rc;
}
