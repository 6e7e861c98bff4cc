/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor sim": the panel simulator.  Connects, sends one action per
 * known target (once: not again on a reconnect), prints every message
 * that arrives, reconnects 2 s after any error (at once after the
 * agent's 1012 or 1001), runs until SIGINT (or --duration).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "amoncli.h"


#define AMONCLI_SIM_RETRY_MS 2000


static const char *amoncli_sim_default_ids[] = {
    "demo-target-a", "demo-target-b"};
static const char *amoncli_sim_default_urls[] = {
    "ws://127.0.0.1:8765", "ws://127.0.0.1:8766"};


/* one --json line: {"event","time","detail"[,"delay_ms"]} (delay_ms < 0: none) */
static void
amoncli_sim_json(const char *event, const char *detail, int delay_ms)
{
    cJSON *j;
    char  *s;

    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "event", event);
    cJSON_AddNumberToObject(j, "time", (double) amon_posix_wall_ms());
    cJSON_AddStringToObject(j, "detail", detail);

    if (delay_ms >= 0) {
        cJSON_AddNumberToObject(j, "delay_ms", delay_ms);
    }

    s = cJSON_PrintUnformatted(j);
    if (s) {
        printf("%s\n", s);
    }

    cJSON_free(s);
    cJSON_Delete(j);
}


static void
amoncli_sim_note(const amoncli_opts_t *o, const char *event, const char *fmt,
    const char *arg)
{
    char ts[32], line[1024];

    if (o->json) {
        amoncli_sim_json(event, arg, -1);
        return;
    }

    amoncli_clock(ts, sizeof(ts));
    snprintf(line, sizeof(line), fmt, arg);
    amoncli_tprintf(stdout, "%s %s\n", ts, line);
}


/*
 * Says that sim reconnects after "delay_ms": "retry" with --json (its
 * "delay_ms" too), else "reconnecting to URL in 2s" or "... now".
 */
static void
amoncli_sim_retry(const amoncli_opts_t *o, int delay_ms)
{
    char ts[32];

    if (o->json) {
        amoncli_sim_json("retry", o->url, delay_ms);
        return;
    }

    amoncli_clock(ts, sizeof(ts));

    if (delay_ms > 0) {
        printf("%s reconnecting to %s in %ds\n", ts, o->url, delay_ms / 1000);

    } else {
        printf("%s reconnecting to %s now\n", ts, o->url);
    }
}


/* "ms", but never past "deadline" (-1: none) */
static int
amoncli_sim_left(int ms, int64_t deadline)
{
    int64_t left;

    if (deadline < 0) {
        return ms;
    }

    left = deadline - amon_posix_now_ms();

    return left >= ms ? ms : left < 1 ? 1 : (int) left;
}


/* Sleep "ms" but wake for SIGINT and never past "deadline" (-1: none). */
static void
amoncli_sim_pause(int ms, int64_t deadline)
{
    int64_t now;

    now = amon_posix_now_ms();
    if (deadline >= 0 && now + ms > deadline) {
        ms = deadline > now ? (int) (deadline - now) : 0;
    }

    while (ms > 0 && !amoncli_interrupted) {
        amoncli_sleep_ms(ms > 100 ? 100 : ms);
        ms -= 100;
    }
}


/* The demo targets when the options name none. */
static void
amoncli_sim_defaults(amoncli_opts_t *o)
{
    unsigned i;

    if (o->ntarget_ids || o->ntarget_urls) {
        return;
    }

    for (i = 0; i < 2; i++) {
        o->target_ids[i] = amoncli_sim_default_ids[i];
        o->target_urls[i] = amoncli_sim_default_urls[i];
    }
    o->ntarget_ids = 2;
    o->ntarget_urls = 2;
}


/*
 * One action per target, each printed once sent, from the target "*next"
 * on: those sent on an earlier connection are not sent again (a reload of
 * the agent would otherwise restart every target).  0 or -1 ("err" says).
 */
static int
amoncli_sim_actions(const amoncli_opts_t *o, amoncli_ws_t *ws, amon_buf_t *b,
    unsigned *next, int timeout_ms, char *err, size_t errlen)
{
    unsigned    i, n;
    char        id[AMON_UUID_LEN + 1];
    const char *tid, *turl, *params;

    n = o->ntarget_ids > o->ntarget_urls ? o->ntarget_ids : o->ntarget_urls;
    params = o->params ? o->params : "{\"from\":\"panel-simulator\"}";

    for (i = *next; i < n; i++) {
        tid = i < o->ntarget_ids ? o->target_ids[i] : NULL;
        turl = i < o->ntarget_urls ? o->target_urls[i] : NULL;

        amon_posix_uuid4(id);

        if (amoncli_build_action(b, id, tid, turl,
                o->action ? o->action : "restart", params, o->binary)
            != AMON_OK) {
            snprintf(err, errlen, "cannot build an action");
            return -1;
        }

        if (amoncli_ws_send(ws, o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT,
                b->data, b->len, timeout_ms)
            != 0) {
            snprintf(err, errlen, "send failed");
            return -1;
        }

        amoncli_print_message(o, "sent",
            o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, b->data, b->len);
        *next = i + 1;
    }

    return 0;
}


/*
 * Prints every message until SIGINT or "deadline" (-1: none); 0, or -1
 * when the connection ended ("err" says why).
 */
static int
amoncli_sim_print(const amoncli_opts_t *o, amoncli_ws_t *ws, int64_t deadline,
    char *err, size_t errlen)
{
    int                  rc;
    size_t               len;
    unsigned             opcode;
    int64_t              now;
    const unsigned char *p;

    while (!amoncli_interrupted) {
        now = amon_posix_now_ms();
        if (deadline >= 0 && now >= deadline) {
            break;
        }

        rc = amoncli_ws_recv(ws, deadline < 0 ? -1 : (int) (deadline - now),
            &opcode, &p, &len, err, errlen);

        if (rc == 1) {
            amoncli_print_message(o, "recv", opcode, p, len);
            continue;
        }

        if (rc < 0) {
            return -1;
        }
    }

    return 0;
}


int
amoncli_cmd_sim(amoncli_opts_t *o)
{
    int          rc, connected, connect_ms, delay;
    unsigned     next;
    int64_t      deadline;
    char         err[256];
    amon_buf_t   b;
    amoncli_ws_t ws;

    amoncli_sim_defaults(o);

    connect_ms = o->timeout > 0 ? (int) (o->timeout * 1000) : 5000;
    deadline = o->duration > 0
        ? amon_posix_now_ms() + (int64_t) (o->duration * 1000)
        : -1;
    connected = 0;
    next = 0;

    memset(&b, 0, sizeof(b));

    while (!amoncli_interrupted
        && (deadline < 0 || amon_posix_now_ms() < deadline)) {
        if (amoncli_connect(&ws, o, amoncli_sim_left(connect_ms, deadline))
            != 0) {
            amoncli_sim_retry(o, AMONCLI_SIM_RETRY_MS);
            amoncli_sim_pause(AMONCLI_SIM_RETRY_MS, deadline);
            continue;
        }

        connected = 1;
        amoncli_sim_note(o, "connected", "connected to %s", o->url);

        rc = amoncli_sim_actions(o, &ws, &b, &next,
            amoncli_sim_left(connect_ms, deadline), err, sizeof(err));

        if (rc == 0) {
            rc = amoncli_sim_print(o, &ws, deadline, err, sizeof(err));
        }

        amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

        if (rc < 0 && !amoncli_interrupted) {
            amoncli_tprintf(stderr, "amonitor sim: %s\n", err);

            /* a reload or stop (1012, 1001): the new workers are there */
            delay =
                amoncli_ws_closed_to_reconnect(&ws) ? 0 : AMONCLI_SIM_RETRY_MS;
            amoncli_sim_retry(o, delay);
            amoncli_sim_pause(delay, deadline);
        }
    }

    amon_buf_free(&b, NULL);

    return connected ? AMONCLI_EXIT_OK : AMONCLI_EXIT_RUNTIME;
}
