/*
 * Copyright (C) AMonitor authors
 *
 * How the amonitor CLI prints messages: as one JSON line (--json) or as
 * "time type target key=value..."; a protobuf envelope is rebuilt as JSON
 * field by field first, so that both encodings print alike.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "amoncli.h"
#include "amonitor.pb-c.h"


static void
amoncli_add_str(cJSON *obj, const char *name, amon_str_t s)
{
    char *c;

    if (s.data == NULL) {
        return;
    }

    c = strndup((const char *) s.data, s.len);
    if (c) {
        cJSON_AddStringToObject(obj, name, c);
        free(c);
    }
}


/* JSON text bytes as a cJSON value, or a string when they are not JSON. */
static cJSON *
amoncli_json_or_string(const unsigned char *p, size_t len)
{
    cJSON *j;
    char  *c;

    j = cJSON_ParseWithLength((const char *) p, len);
    if (j) {
        return j;
    }

    c = strndup((const char *) p, len);
    j = cJSON_CreateString(c ? c : "");
    free(c);

    return j;
}


/* An event's protobuf payload as its JSON members. */
static void
amoncli_event_json(cJSON *pl, const amon_envelope_t *env)
{
    Amonitor__Control__V1__EventPayload *ev;

    ev = amonitor__control__v1__event_payload__unpack(
        NULL, env->payload.len, env->payload.data);
    if (ev == NULL) {
        return;
    }

    cJSON_AddStringToObject(pl, "target_id", ev->target_id);
    cJSON_AddStringToObject(pl, "event_name", ev->event_name);
    cJSON_AddItemToObject(pl, "data",
        ev->data.len ? amoncli_json_or_string(ev->data.data, ev->data.len)
                     : cJSON_CreateNull());
    amonitor__control__v1__event_payload__free_unpacked(ev, NULL);
}


/* A heartbeat's protobuf payload as its JSON members. */
static void
amoncli_heartbeat_json(cJSON *pl, const amon_envelope_t *env)
{
    size_t                                   i;
    cJSON                                   *m;
    Amonitor__Control__V1__HeartbeatPayload *hb;

    hb = amonitor__control__v1__heartbeat_payload__unpack(
        NULL, env->payload.len, env->payload.data);
    if (hb == NULL) {
        return;
    }

    cJSON_AddStringToObject(pl, "target_id", hb->target_id);
    cJSON_AddStringToObject(pl, "status", "up");
    m = cJSON_AddObjectToObject(pl, "metrics");
    for (i = 0; i < hb->n_metrics; i++) {
        cJSON_AddStringToObject(m, hb->metrics[i]->key, hb->metrics[i]->value);
    }
    amonitor__control__v1__heartbeat_payload__free_unpacked(hb, NULL);
}


/* A register message's protobuf payload as its JSON members. */
static void
amoncli_register_json(cJSON *pl, const amon_envelope_t *env)
{
    size_t                                  i;
    cJSON                                  *m;
    Amonitor__Control__V1__RegisterPayload *reg;

    reg = amonitor__control__v1__register_payload__unpack(
        NULL, env->payload.len, env->payload.data);
    if (reg == NULL) {
        return;
    }

    cJSON_AddStringToObject(pl, "target_id", reg->target_id);
    cJSON_AddStringToObject(pl, "sdk_url", reg->sdk_url);
    m = cJSON_AddObjectToObject(pl, "metadata");
    for (i = 0; i < reg->n_metadata; i++) {
        cJSON_AddStringToObject(
            m, reg->metadata[i]->key, reg->metadata[i]->value);
    }
    amonitor__control__v1__register_payload__free_unpacked(reg, NULL);
}


/* The payload of a decoded protobuf envelope into "pl", a member of "j". */
static void
amoncli_payload_json(cJSON *j, cJSON *pl, const amon_envelope_t *env)
{
    switch (env->type) {

    case AMON_MSG_ACTION:
        amoncli_add_str(pl, "action", env->action);
        if (env->params.len) {
            cJSON_AddItemToObject(pl, "params",
                amoncli_json_or_string(env->params.data, env->params.len));
        }
        amoncli_add_str(pl, "target_url", env->target_url);
        break;

    case AMON_MSG_ACTION_ACK:
        amoncli_add_str(pl, "action_msg_id", env->action_msg_id);
        cJSON_AddBoolToObject(pl, "success", env->success);
        amoncli_add_str(pl, "message", env->message);
        break;

    case AMON_MSG_ERROR:
        amoncli_add_str(pl, "code", env->code);
        amoncli_add_str(pl, "message", env->message);
        break;

    case AMON_MSG_EVENT: amoncli_event_json(pl, env); break;

    case AMON_MSG_HEARTBEAT: amoncli_heartbeat_json(pl, env); break;

    case AMON_MSG_REGISTER: amoncli_register_json(pl, env); break;

    default:
        /* a type without a schema message: its bytes, JSON if they are */
        if (env->payload.len) {
            cJSON_ReplaceItemInObject(j, "payload",
                amoncli_json_or_string(env->payload.data, env->payload.len));
        }
        break;
    }
}


/*
 * A message as a JSON object: JSON text as it is, a protobuf envelope
 * rebuilt field by field (payload included) so that both print alike.
 */
static cJSON *
amoncli_message_json(unsigned opcode, const unsigned char *p, size_t len)
{
    cJSON           *j, *pl;
    amon_envelope_t *env;

    if (opcode != AMON_WS_OP_BINARY) {
        return cJSON_ParseWithLength((const char *) p, len);
    }

    env = malloc(sizeof(amon_envelope_t));
    if (env == NULL) {
        return NULL;
    }

    if (amon_envelope_decode_pb(env, p, len, NULL) != AMON_OK) {
        amon_envelope_release(env);
        free(env);
        return NULL;
    }

    j = cJSON_CreateObject();
    amoncli_add_str(j, "msg_id", env->msg_id);
    amoncli_add_str(j, "trace_id", env->trace_id);
    amoncli_add_str(j, "type", env->type_name);
    amoncli_add_str(j, "target_id", env->target_id);
    if (env->has_timestamp) {
        cJSON_AddNumberToObject(j, "timestamp", (double) env->timestamp);
    }

    pl = cJSON_AddObjectToObject(j, "payload");

    amoncli_payload_json(j, pl, env);

    amon_envelope_release(env);
    free(env);

    return j;
}


/* {"event":E,"time":ms,KEY:<message as JSON>} on one line. */
void
amoncli_print_json_line(const char *event, const char *key,
    const unsigned char *p, size_t len, int binary)
{
    cJSON *j, *m;
    char  *s;

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "event", event);
    cJSON_AddNumberToObject(j, "time", (double) amon_posix_wall_ms());

    m = amoncli_message_json(
        binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, p, len);
    if (m == NULL) {
        char *raw = strndup((const char *) p, binary ? 0 : len);

        cJSON_AddStringToObject(j, "raw", raw ? raw : "");
        free(raw);

    } else {
        cJSON_AddItemToObject(j, key, m);
    }

    s = cJSON_PrintUnformatted(j);
    if (s) {
        printf("%s\n", s);
    }

    cJSON_free(s);
    cJSON_Delete(j);
}


static const char *
amoncli_get_str(const cJSON *obj, const char *name)
{
    const cJSON *v;

    v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}


static void
amoncli_print_compact(const char *label, const cJSON *v)
{
    char *s;

    if (v == NULL) {
        return;
    }

    s = cJSON_PrintUnformatted(v);
    if (s) {
        amoncli_tprintf(stdout, " %s=%s", label, s);
    }
    cJSON_free(s);
}


/*
 * Print a received (or sent) message: with --json as one JSON line, else
 * as "time type target key=value...".
 */
void
amoncli_print_message(const amoncli_opts_t *o, const char *event,
    unsigned opcode, const unsigned char *p, size_t len)
{
    cJSON      *j, *pl, *v;
    const char *type, *target, *s;
    char        ts[32];

    if (o->json) {
        amoncli_print_json_line(
            event, "message", p, len, opcode == AMON_WS_OP_BINARY);
        return;
    }

    amoncli_clock(ts, sizeof(ts));

    j = amoncli_message_json(opcode, p, len);
    if (j == NULL || !cJSON_IsObject(j)) {
        amoncli_tprintf(stdout, "%s %-5s %-13s (%zu bytes, not an envelope)\n",
            ts, event, opcode == AMON_WS_OP_BINARY ? "binary" : "text", len);
        cJSON_Delete(j);
        return;
    }

    pl = cJSON_GetObjectItemCaseSensitive(j, "payload");
    type = amoncli_get_str(j, "type");
    target = amoncli_get_str(j, "target_id");
    if (target == NULL || target[0] == '\0') {
        target = amoncli_get_str(pl, "target_id");
    }

    amoncli_tprintf(stdout, "%s %-5s %-13s %-16s", ts, event, type ? type : "?",
        target && target[0] ? target : "-");

    if (type && strcmp(type, "heartbeat") == 0) {
        s = amoncli_get_str(pl, "status");
        amoncli_tprintf(stdout, " status=%s", s ? s : "?");
        amoncli_print_compact(
            "metrics", cJSON_GetObjectItemCaseSensitive(pl, "metrics"));

    } else if (type && strcmp(type, "event") == 0) {
        s = amoncli_get_str(pl, "event_name");
        amoncli_tprintf(stdout, " event_name=%s", s ? s : "?");
        amoncli_print_compact(
            "data", cJSON_GetObjectItemCaseSensitive(pl, "data"));

    } else if (type && strcmp(type, "action_ack") == 0) {
        s = amoncli_get_str(pl, "action_msg_id");
        amoncli_tprintf(stdout, " action_msg_id=%s", s ? s : "?");
        v = cJSON_GetObjectItemCaseSensitive(pl, "success");
        amoncli_tprintf(
            stdout, " success=%s", cJSON_IsTrue(v) ? "true" : "false");
        amoncli_print_compact(
            "message", cJSON_GetObjectItemCaseSensitive(pl, "message"));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pl, "duplicate"))) {
            amoncli_tprintf(stdout, " duplicate=true");
        }

    } else if (type && strcmp(type, "action") == 0) {
        s = amoncli_get_str(j, "msg_id");
        amoncli_tprintf(stdout, " msg_id=%s", s ? s : "?");
        s = amoncli_get_str(pl, "action");
        amoncli_tprintf(stdout, " action=%s", s ? s : "?");
        amoncli_print_compact(
            "params", cJSON_GetObjectItemCaseSensitive(pl, "params"));
        s = amoncli_get_str(pl, "target_url");
        if (s) {
            amoncli_tprintf(stdout, " target_url=%s", s);
        }

    } else if (type && strcmp(type, "error") == 0) {
        s = amoncli_get_str(j, "msg_id");
        amoncli_tprintf(stdout, " msg_id=%s", s ? s : "-");
        s = amoncli_get_str(pl, "code");
        amoncli_tprintf(stdout, " code=%s", s ? s : "?");
        amoncli_print_compact(
            "message", cJSON_GetObjectItemCaseSensitive(pl, "message"));

    } else {
        amoncli_print_compact("payload", pl);
    }

    putchar('\n');

    cJSON_Delete(j);
}
