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

#include "amonitor.h"


#define AMONITOR_SEND_TIMEOUT 20.0


typedef enum {
    AMONITOR_WAIT_ACK = 1,
    AMONITOR_WAIT_ERROR,
    AMONITOR_WAIT_TIMEOUT,
    AMONITOR_WAIT_CLOSED
} amonitor_wait_e;


typedef struct {
    unsigned   opcode;
    amon_buf_t raw; /* the matching message */
    int        success;
    int        duplicate;
    char      *message; /* ack message or error message */
    char      *code; /* error code */
    char       err[256]; /* why the connection ended */
} amonitor_reply_t;


static int  amonitor_send_action(amonitor_ws_t *ws, const amonitor_opts_t *o,
     const char *msg_id, const char *params);
static int  amonitor_wait_reply(amonitor_ws_t *ws, const amonitor_opts_t *o,
     const char *msg_id, int64_t deadline, amonitor_reply_t *r);
static void amonitor_reply_free(amonitor_reply_t *r);
static int  amonitor_report(const amonitor_opts_t *o, const char *cmd,
     const char *msg_id, int what, amonitor_reply_t *r);
static void amonitor_result_line(
    const amonitor_opts_t *o, const char *event, const char *msg_id);


int
amonitor_cmd_send(amonitor_opts_t *o)
{
    int              what;
    char             id[37];
    const char      *msg_id;
    int64_t          deadline;
    amonitor_ws_t    ws;
    amonitor_reply_t r;

    if (o->ntarget_ids == 0 && o->ntarget_urls == 0) {
        fprintf(
            stderr, "amonitor send: --target-id or --target-url is required\n");
        return AMONITOR_EXIT_USAGE;
    }

    if (o->ntarget_ids > 1 || o->ntarget_urls > 1) {
        fprintf(stderr, "amonitor send: give one target\n");
        return AMONITOR_EXIT_USAGE;
    }

    if (o->timeout < 0) {
        o->timeout = AMONITOR_SEND_TIMEOUT;
    }

    amonitor_new_id(id);
    msg_id = o->msg_id ? o->msg_id : id;

    deadline = amonitor_now_ms() + (int64_t) (o->timeout * 1000);

    if (amonitor_connect(&ws, o, (int) (o->timeout * 1000)) != 0) {
        return AMONITOR_EXIT_RUNTIME;
    }

    if (amonitor_send_action(&ws, o, msg_id,
            o->params ? o->params : "{\"from\":\"amonitor-send\"}")
        != 0) {
        fprintf(stderr, "amonitor send: cannot send the action\n");
        amonitor_ws_close(&ws, AMON_WS_CLOSE_NORMAL);
        return AMONITOR_EXIT_RUNTIME;
    }

    what = amonitor_wait_reply(&ws, o, msg_id, deadline, &r);

    amonitor_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

    return amonitor_report(o, "send", msg_id, what, &r);
}


int
amonitor_cmd_dedupe(amonitor_opts_t *o)
{
    int              what, rc;
    char             id[37];
    const char      *msg_id;
    int64_t          deadline;
    amonitor_ws_t    ws;
    amonitor_reply_t r;

    if (o->ntarget_ids > 1 || o->ntarget_urls > 1) {
        fprintf(stderr, "amonitor dedupe-check: give one target\n");
        return AMONITOR_EXIT_USAGE;
    }

    if (o->ntarget_ids == 0 && o->ntarget_urls == 0) {
        o->target_ids[o->ntarget_ids++] = "demo-target-a";
    }

    if (o->timeout < 0) {
        o->timeout = AMONITOR_SEND_TIMEOUT;
    }

    amonitor_new_id(id);
    msg_id = o->msg_id ? o->msg_id : id;

    deadline = amonitor_now_ms() + (int64_t) (o->timeout * 1000);

    if (amonitor_connect(&ws, o, (int) (o->timeout * 1000)) != 0) {
        return AMONITOR_EXIT_RUNTIME;
    }

    /* first: a normal action that must be acked */
    if (amonitor_send_action(&ws, o, msg_id,
            "{\"from\":\"amonitor-dedupe-check\",\"attempt\":1}")
        != 0) {
        fprintf(stderr, "amonitor dedupe-check: cannot send the action\n");
        amonitor_ws_close(&ws, AMON_WS_CLOSE_NORMAL);
        return AMONITOR_EXIT_RUNTIME;
    }

    what = amonitor_wait_reply(&ws, o, msg_id, deadline, &r);

    if (what != AMONITOR_WAIT_ACK) {
        amonitor_ws_close(&ws, AMON_WS_CLOSE_NORMAL);
        rc = amonitor_report(o, "dedupe-check", msg_id, what, &r);
        return rc == AMONITOR_EXIT_OK ? AMONITOR_EXIT_RUNTIME : rc;
    }

    if (o->verbose || o->json) {
        amonitor_print_message(o, "first", r.opcode, r.raw.data, r.raw.len);
    }

    amonitor_reply_free(&r);

    /* second: the same msg_id, different params */
    if (amonitor_send_action(&ws, o, msg_id,
            "{\"from\":\"amonitor-dedupe-check\",\"attempt\":2}")
        != 0) {
        fprintf(stderr, "amonitor dedupe-check: cannot send the action\n");
        amonitor_ws_close(&ws, AMON_WS_CLOSE_NORMAL);
        return AMONITOR_EXIT_RUNTIME;
    }

    deadline = amonitor_now_ms() + (int64_t) (o->timeout * 1000);
    what = amonitor_wait_reply(&ws, o, msg_id, deadline, &r);

    amonitor_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

    if (what != AMONITOR_WAIT_ACK) {
        rc = amonitor_report(o, "dedupe-check", msg_id, what, &r);
        return rc == AMONITOR_EXIT_OK ? AMONITOR_EXIT_RUNTIME : rc;
    }

    if (r.message && strstr(r.message, "duplicate ignored")) {
        if (o->json) {
            amonitor_print_json_line("dedupe_ok", "ack", r.raw.data, r.raw.len,
                r.opcode == AMON_WS_OP_BINARY);

        } else {
            printf("dedupe_ok\n");
        }

        amonitor_reply_free(&r);
        return AMONITOR_EXIT_OK;
    }

    if (o->json) {
        amonitor_print_json_line("dedupe_failed", "ack", r.raw.data, r.raw.len,
            r.opcode == AMON_WS_OP_BINARY);

    } else {
        printf("dedupe_failed\n");
    }

    fprintf(stderr,
        "amonitor dedupe-check: the second action was not answered "
        "\"duplicate ignored\" (message: \"%s\")\n",
        r.message ? r.message : "");

    amonitor_reply_free(&r);

    return AMONITOR_EXIT_RUNTIME;
}


static int
amonitor_send_action(amonitor_ws_t *ws, const amonitor_opts_t *o,
    const char *msg_id, const char *params)
{
    int        rc;
    amon_buf_t b;

    memset(&b, 0, sizeof(b));

    rc = amonitor_build_action(&b, msg_id,
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
        amonitor_print_message(o, "sent",
            o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, b.data, b.len);
    }

    rc = amonitor_ws_send(ws, o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT,
        b.data, b.len, 5000);

    amon_buf_free(&b, NULL);

    return rc;
}


/*
 * Read until the action_ack for "msg_id" or an error envelope carrying
 * that msg_id arrives, the deadline passes or the connection ends.
 */
static int
amonitor_wait_reply(amonitor_ws_t *ws, const amonitor_opts_t *o,
    const char *msg_id, int64_t deadline, amonitor_reply_t *r)
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
        return AMONITOR_WAIT_CLOSED;
    }

    for (;;) {
        now = amonitor_now_ms();
        if (now >= deadline || amonitor_interrupted) {
            what = AMONITOR_WAIT_TIMEOUT;
            break;
        }

        rc = amonitor_ws_recv(ws, (int) (deadline - now), &opcode, &p, &len,
            r->err, sizeof(r->err));

        if (rc == 0) {
            continue;
        }

        if (rc < 0) {
            what = AMONITOR_WAIT_CLOSED;
            break;
        }

        if (amonitor_decode(env, opcode, p, len) != AMON_OK) {
            amon_envelope_release(env);
            if (o->verbose) {
                amonitor_print_message(o, "recv", opcode, p, len);
            }
            continue;
        }

        what = 0;

        if (env->type == AMON_MSG_ACTION_ACK
            && amonitor_str_eq(env->action_msg_id, msg_id)) {
            what = AMONITOR_WAIT_ACK;
            r->success = env->success;
            r->message = strndup(
                env->message.data ? (const char *) env->message.data : "",
                env->message.len);

        } else if (env->type == AMON_MSG_ERROR
            && amonitor_str_eq(env->msg_id, msg_id)) {
            what = AMONITOR_WAIT_ERROR;
            r->code =
                strndup(env->code.data ? (const char *) env->code.data : "",
                    env->code.len);
            r->message = strndup(
                env->message.data ? (const char *) env->message.data : "",
                env->message.len);
        }

        amon_envelope_release(env);

        if (what == 0) {
            if (o->verbose) {
                amonitor_print_message(o, "recv", opcode, p, len);
            }
            continue;
        }

        r->opcode = opcode;
        if (amon_buf_reserve(&r->raw, len, AMONITOR_CLI_MAX_MESSAGE, NULL)
            == AMON_OK) {
            memcpy(r->raw.data, p, len);
            r->raw.len = len;
        }
        break;
    }

    free(env);

    return what;
}


static void
amonitor_reply_free(amonitor_reply_t *r)
{
    amon_buf_free(&r->raw, NULL);
    free(r->message);
    free(r->code);
    r->message = NULL;
    r->code = NULL;
}


static void
amonitor_result_line(
    const amonitor_opts_t *o, const char *event, const char *msg_id)
{
    cJSON *j;
    char  *s;

    if (!o->json) {
        printf("%s\n", event);
        return;
    }

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "event", event);
    cJSON_AddNumberToObject(j, "time", (double) amonitor_wall_ms());
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
amonitor_report(const amonitor_opts_t *o, const char *cmd, const char *msg_id,
    int what, amonitor_reply_t *r)
{
    int   rc;
    char *text;

    rc = AMONITOR_EXIT_RUNTIME;

    switch (what) {

    case AMONITOR_WAIT_ACK:
        if (o->json) {
            amonitor_print_json_line("ack_matched", "ack", r->raw.data,
                r->raw.len, r->opcode == AMON_WS_OP_BINARY);

        } else if (r->opcode == AMON_WS_OP_BINARY) {
            printf("ack_matched ");
            fflush(stdout);
            amonitor_print_message(
                o, "recv", r->opcode, r->raw.data, r->raw.len);

        } else {
            text = strndup((const char *) r->raw.data, r->raw.len);
            printf("ack_matched %s\n", text ? text : "");
            free(text);
        }

        if (r->success) {
            rc = AMONITOR_EXIT_OK;

        } else {
            fprintf(stderr, "amonitor %s: action failed: %s\n", cmd,
                r->message ? r->message : "");
        }
        break;

    case AMONITOR_WAIT_ERROR:
        if (o->json) {
            amonitor_print_json_line("error", "error", r->raw.data, r->raw.len,
                r->opcode == AMON_WS_OP_BINARY);

        } else {
            printf("error %s %s\n", r->code ? r->code : "",
                r->message ? r->message : "");
        }

        fprintf(stderr, "amonitor %s: agent error %s: %s\n", cmd,
            r->code ? r->code : "", r->message ? r->message : "");
        break;

    case AMONITOR_WAIT_TIMEOUT:
        amonitor_result_line(o, "ack_timeout", msg_id);
        fprintf(stderr, "amonitor %s: no ack for msg_id %s within %gs\n", cmd,
            msg_id, o->timeout);
        break;

    default:
        amonitor_result_line(o, "connection_closed", msg_id);
        fprintf(stderr, "amonitor %s: %s\n", cmd, r->err);
        break;
    }

    amonitor_reply_free(r);

    return rc;
}
