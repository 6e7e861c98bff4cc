/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor bench" (alias "stress"): sends actions at a fixed rate over
 * one panel connection, round-robin over the targets, and prints once a
 * second the acks/s, the p50/p99 ack latency and the events/s received.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "amoncli.h"


#define AMONCLI_BENCH_RING    (1u << 18)
#define AMONCLI_BENCH_SAMPLES (1u << 21)
#define AMONCLI_BENCH_DRAIN   2000


typedef struct {
    uint64_t seq;
    int64_t  sent_us;
} amoncli_slot_t;


typedef struct {
    uint64_t sent;
    uint64_t acks;
    uint64_t acks_failed;
    uint64_t errors;
    uint64_t events; /* heartbeats and events */
    uint64_t duplicates;
    uint64_t throttled;
    float   *lat; /* ms */
    size_t   nlat;
    size_t   cap;
} amoncli_window_t;


/* One run: its options, connection, send schedule and counters. */
typedef struct {
    amoncli_opts_t  *o;
    const char      *params;
    unsigned         ntargets;
    unsigned         ti; /* the next target, round-robin */
    uint64_t         seq; /* actions scheduled so far */
    int64_t          start;
    size_t           plen;
    char             run[9];
    char             prefix[32]; /* "bench-RUN-": our msg_ids */
    char             err[256];
    amon_buf_t       b;
    amoncli_ws_t     ws;
    amoncli_slot_t  *ring;
    amon_envelope_t *env;
    amoncli_window_t win; /* the second in progress */
    amoncli_window_t total;
} amoncli_bench_t;


static int64_t
amoncli_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static int
amoncli_cmp_float(const void *a, const void *b)
{
    float x = *(const float *) a, y = *(const float *) b;

    return (x > y) - (x < y);
}


/* Sorts the samples; returns the q-quantile (0 when there are none). */
static double
amoncli_quantile(float *v, size_t n, double q, int sorted)
{
    size_t i;

    if (n == 0) {
        return 0;
    }

    if (!sorted) {
        qsort(v, n, sizeof(float), amoncli_cmp_float);
    }

    i = (size_t) (q * (double) (n - 1) + 0.5);

    return v[i];
}


static void
amoncli_sample(amoncli_window_t *w, float ms)
{
    if (w->nlat < w->cap) {
        w->lat[w->nlat++] = ms;
        return;
    }

    /* full: keep a uniform sample of everything seen */
    w->lat[(size_t) rand() % w->cap] = ms;
}


/* The seq of one of our msg_ids ("bench-RUN-SEQ"), or 0. */
static uint64_t
amoncli_bench_seq(amon_str_t id, const char *prefix, size_t plen)
{
    size_t   i;
    uint64_t seq;

    if (id.data == NULL || id.len <= plen || id.len > plen + 20
        || memcmp(id.data, prefix, plen) != 0) {
        return 0;
    }

    seq = 0;

    for (i = plen; i < id.len; i++) {
        if (id.data[i] < '0' || id.data[i] > '9') {
            return 0;
        }
        seq = seq * 10 + (id.data[i] - '0');
    }

    return seq;
}


static void
amoncli_bench_print(const amoncli_opts_t *o, const char *event, double t,
    double secs, amoncli_window_t *w, uint64_t inflight, int sorted)
{
    double p50, p99, max;
    cJSON *j;
    char  *s;

    p50 = amoncli_quantile(w->lat, w->nlat, 0.50, sorted);
    p99 = amoncli_quantile(w->lat, w->nlat, 0.99, 1);
    max = w->nlat ? w->lat[w->nlat - 1] : 0;

    if (o->json) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "event", event);
        cJSON_AddNumberToObject(j, "t", t);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "sent", (double) w->sent);
        cJSON_AddNumberToObject(j, "acks", (double) w->acks);
        cJSON_AddNumberToObject(j, "acks_failed", (double) w->acks_failed);
        cJSON_AddNumberToObject(j, "duplicates", (double) w->duplicates);
        cJSON_AddNumberToObject(j, "errors", (double) w->errors);
        cJSON_AddNumberToObject(j, "events", (double) w->events);
        cJSON_AddNumberToObject(j, "throttled", (double) w->throttled);
        cJSON_AddNumberToObject(j, "acks_per_s", (double) w->acks / secs);
        cJSON_AddNumberToObject(j, "events_per_s", (double) w->events / secs);
        cJSON_AddNumberToObject(j, "p50_ms", p50);
        cJSON_AddNumberToObject(j, "p99_ms", p99);
        cJSON_AddNumberToObject(j, "max_ms", max);
        cJSON_AddNumberToObject(j, "inflight", (double) inflight);
        s = cJSON_PrintUnformatted(j);
        if (s) {
            printf("%s\n", s);
        }
        cJSON_free(s);
        cJSON_Delete(j);
        return;
    }

    printf("%s%6.1fs  sent %7.1f/s  acks %7.1f/s (%llu failed)  "
           "p50 %7.2fms  p99 %7.2fms  events %7.1f/s  errors %llu  "
           "inflight %llu\n",
        strcmp(event, "bench_summary") == 0 ? "total " : "", t,
        (double) w->sent / secs, (double) w->acks / secs,
        (unsigned long long) w->acks_failed, p50, p99,
        (double) w->events / secs, (unsigned long long) w->errors,
        (unsigned long long) inflight);
}


/* Allocations, default targets and the run id; 0 or -1 (said so). */
static int
amoncli_bench_init(amoncli_bench_t *ctx, amoncli_opts_t *o)
{
    char id[AMON_UUID_LEN + 1];

    static const char *def_ids[] = {"demo-target-a", "demo-target-b"};

    if (o->ntarget_ids == 0 && o->ntarget_urls == 0) {
        o->target_ids[0] = def_ids[0];
        o->target_ids[1] = def_ids[1];
        o->ntarget_ids = 2;
    }

    memset(ctx, 0, sizeof(*ctx));

    ctx->o = o;
    ctx->ntargets =
        o->ntarget_ids > o->ntarget_urls ? o->ntarget_ids : o->ntarget_urls;
    ctx->params = o->params ? o->params : "{\"from\":\"amonitor-bench\"}";

    ctx->ring = calloc(AMONCLI_BENCH_RING, sizeof(amoncli_slot_t));
    ctx->env = malloc(sizeof(amon_envelope_t));
    ctx->win.cap = 1u << 16;
    ctx->win.lat = malloc(ctx->win.cap * sizeof(float));
    ctx->total.cap = AMONCLI_BENCH_SAMPLES;
    ctx->total.lat = malloc(ctx->total.cap * sizeof(float));

    if (ctx->ring == NULL || ctx->env == NULL || ctx->win.lat == NULL
        || ctx->total.lat == NULL) {
        fprintf(stderr, "amonitor bench: out of memory\n");
        return -1;
    }

    amon_posix_uuid4(id);
    memcpy(ctx->run, id, 8);
    ctx->run[8] = '\0';
    ctx->plen = (size_t) snprintf(
        ctx->prefix, sizeof(ctx->prefix), "bench-%s-", ctx->run);

    return 0;
}


static void
amoncli_bench_free(amoncli_bench_t *ctx)
{
    amon_buf_free(&ctx->b, NULL);
    free(ctx->ring);
    free(ctx->env);
    free(ctx->win.lat);
    free(ctx->total.lat);
}


/* Adds the window's counts to the totals and empties the window. */
static void
amoncli_bench_fold(amoncli_window_t *total, amoncli_window_t *win)
{
    total->sent += win->sent;
    total->acks += win->acks;
    total->acks_failed += win->acks_failed;
    total->errors += win->errors;
    total->events += win->events;
    total->duplicates += win->duplicates;
    total->throttled += win->throttled;
    win->sent = win->acks = win->acks_failed = win->errors = 0;
    win->events = win->duplicates = win->throttled = 0;
    win->nlat = 0;
}


/*
 * How long one send may wait for the agent to take it: 5 s, and never
 * past the end of --duration and the wait for the last answers.
 */
static int
amoncli_bench_send_ms(const amoncli_bench_t *ctx, int64_t now)
{
    int64_t left;

    if (ctx->o->duration <= 0) {
        return 5000;
    }

    left = (ctx->start + (int64_t) (ctx->o->duration * 1e6)
               + AMONCLI_BENCH_DRAIN * 1000 - now)
        / 1000;

    return left >= 5000 ? 5000 : left < 1 ? 1 : (int) left;
}


/*
 * Sends what the schedule says is due by "now", unless more than
 * --max-inflight actions are unanswered ("done": answered so far).
 * Returns 0, or -1 when an action could not be built or sent (said so).
 */
static int
amoncli_bench_send_due(amoncli_bench_t *ctx, int64_t now, uint64_t done)
{
    char            id[64];
    uint64_t        due;
    const char     *tid, *turl;
    amoncli_slot_t *slot;
    amoncli_opts_t *o;

    o = ctx->o;
    due = (uint64_t) ((double) (now - ctx->start) * o->rate / 1e6) + 1;

    while (ctx->seq < due) {
        if (ctx->total.sent + ctx->win.sent - done >= o->max_inflight) {
            ctx->win.throttled += due - ctx->seq;
            ctx->seq = due;
            break;
        }

        ctx->seq++;
        snprintf(id, sizeof(id), "%s%llu", ctx->prefix,
            (unsigned long long) ctx->seq);

        tid = o->ntarget_ids ? o->target_ids[ctx->ti % o->ntarget_ids] : NULL;
        turl =
            o->ntarget_urls ? o->target_urls[ctx->ti % o->ntarget_urls] : NULL;
        ctx->ti++;

        if (amoncli_build_action(&ctx->b, id, tid, turl,
                o->action ? o->action : "restart", ctx->params, o->binary)
            != AMON_OK) {
            fprintf(stderr, "amonitor bench: cannot build an action\n");
            return -1;
        }

        slot = &ctx->ring[ctx->seq % AMONCLI_BENCH_RING];
        slot->seq = ctx->seq;
        slot->sent_us = amoncli_now_us();

        if (amoncli_ws_send(&ctx->ws,
                o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, ctx->b.data,
                ctx->b.len, amoncli_bench_send_ms(ctx, now))
            != 0) {
            fprintf(stderr, "amonitor bench: send failed: %s\n",
                errno ? strerror(errno)
                      : "the agent did not take the action in time");
            return -1;
        }

        ctx->win.sent++;
    }

    return 0;
}


/* An action_ack for one of our actions: its latency and outcome. */
static void
amoncli_bench_ack(amoncli_bench_t *ctx, const amon_envelope_t *env)
{
    float           ms;
    uint64_t        s;
    amoncli_slot_t *slot;

    s = amoncli_bench_seq(env->action_msg_id, ctx->prefix, ctx->plen);
    if (s == 0) {
        return;
    }

    slot = &ctx->ring[s % AMONCLI_BENCH_RING];
    if (slot->seq == s && slot->sent_us) {
        ms = (float) (amoncli_now_us() - slot->sent_us) / 1000.0f;
        slot->sent_us = 0;
        amoncli_sample(&ctx->win, ms);
        amoncli_sample(&ctx->total, ms);
    }

    ctx->win.acks++;
    if (!env->success) {
        ctx->win.acks_failed++;
    }
    if (env->message.len
        && memmem(
            env->message.data, env->message.len, "duplicate ignored", 17)) {
        ctx->win.duplicates++;
    }
}


/* Counts one received message. */
static void
amoncli_bench_take(
    amoncli_bench_t *ctx, unsigned opcode, const unsigned char *p, size_t len)
{
    amon_envelope_t *env;

    env = ctx->env;

    if (amoncli_decode(env, opcode, p, len) == AMON_OK) {
        switch (env->type) {

        case AMON_MSG_ACTION_ACK: amoncli_bench_ack(ctx, env); break;

        case AMON_MSG_ERROR:
            /* a progress notice (final:false) is not an outcome */
            if (amoncli_bench_seq(env->msg_id, ctx->prefix, ctx->plen)
                && !(env->has_final && !env->final)) {
                ctx->win.errors++;
                if (ctx->o->verbose) {
                    amoncli_print_message(ctx->o, "recv", opcode, p, len);
                }
            }
            break;

        case AMON_MSG_HEARTBEAT:
        case AMON_MSG_EVENT: ctx->win.events++; break;

        default: break;
        }
    }

    amon_envelope_release(env);
}


/*
 * Waits up to "wait_ms" for a message, then takes everything already
 * buffered before sending more.  Returns 0, or -1 when the connection
 * ended (said so).
 */
static int
amoncli_bench_recv(amoncli_bench_t *ctx, int wait_ms)
{
    int                  rc;
    size_t               len;
    unsigned             opcode;
    const unsigned char *p;

    rc = amoncli_ws_recv(
        &ctx->ws, wait_ms, &opcode, &p, &len, ctx->err, sizeof(ctx->err));

    while (rc == 1) {
        amoncli_bench_take(ctx, opcode, p, len);

        rc = amoncli_ws_recv(
            &ctx->ws, 0, &opcode, &p, &len, ctx->err, sizeof(ctx->err));
    }

    if (rc < 0) {
        amoncli_tprintf(stderr, "amonitor bench: %s\n", ctx->err);
        return -1;
    }

    return 0;
}


/*
 * Sends on schedule and counts answers until --duration or SIGINT, then
 * waits up to AMONCLI_BENCH_DRAIN ms for the answers still missing; a
 * line per second.  Returns 0, or -1 on a send or connection failure.
 */
static int
amoncli_bench_loop(amoncli_bench_t *ctx)
{
    int             wait_ms, draining;
    uint64_t        done;
    int64_t         now, next_print, end, drain_end, next_send;
    amoncli_opts_t *o;

    o = ctx->o;
    next_print = ctx->start + 1000000;
    end = o->duration > 0 ? ctx->start + (int64_t) (o->duration * 1e6) : -1;
    drain_end = -1;
    draining = 0;

    for (;;) {
        now = amoncli_now_us();

        if (!draining && (amoncli_interrupted || (end >= 0 && now >= end))) {
            draining = 1;
            drain_end = now + AMONCLI_BENCH_DRAIN * 1000;
        }

        done = ctx->total.acks + ctx->total.errors + ctx->win.acks
            + ctx->win.errors;

        if (draining
            && (now >= drain_end || done >= ctx->total.sent + ctx->win.sent)) {
            return 0;
        }

        if (!draining && amoncli_bench_send_due(ctx, now, done) != 0) {
            return -1;
        }

        now = amoncli_now_us();

        if (now >= next_print) {
            amoncli_bench_print(o, "bench", (double) (now - ctx->start) / 1e6,
                1.0, &ctx->win, ctx->total.sent + ctx->win.sent - done, 0);
            amoncli_bench_fold(&ctx->total, &ctx->win);

            next_print += 1000000;
            if (next_print <= now) {
                next_print = now + 1000000;
            }
        }

        next_send = draining
            ? next_print
            : ctx->start + (int64_t) ((double) ctx->seq * 1e6 / o->rate);
        if (next_send > next_print) {
            next_send = next_print;
        }
        if (draining && drain_end < next_send) {
            next_send = drain_end;
        }

        wait_ms = next_send > now ? (int) ((next_send - now + 999) / 1000) : 0;

        if (amoncli_bench_recv(ctx, wait_ms) != 0) {
            return -1;
        }
    }
}


int
amoncli_cmd_bench(amoncli_opts_t *o)
{
    int             rc;
    uint64_t        done;
    double          secs;
    amoncli_bench_t ctx;

    if (amoncli_bench_init(&ctx, o) != 0
        || amoncli_connect(
               &ctx.ws, o, o->timeout > 0 ? (int) (o->timeout * 1000) : 5000)
            != 0) {
        amoncli_bench_free(&ctx);
        return AMONCLI_EXIT_RUNTIME;
    }

    if (!o->json) {
        printf("bench: %g actions/s over %u target(s) via %s, run %s%s\n",
            o->rate, ctx.ntargets, o->url, ctx.run,
            o->duration > 0 ? "" : " (Ctrl-C to stop)");
    }

    ctx.start = amoncli_now_us();

    rc = amoncli_bench_loop(&ctx);

    amoncli_ws_close(&ctx.ws, AMON_WS_CLOSE_NORMAL);

    amoncli_bench_fold(&ctx.total, &ctx.win);

    done = ctx.total.acks + ctx.total.errors;
    secs = (double) (amoncli_now_us() - ctx.start) / 1e6;

    if (secs <= 0) {
        secs = 1;
    }

    amoncli_bench_print(o, "bench_summary", secs, secs, &ctx.total,
        ctx.total.sent - (done < ctx.total.sent ? done : ctx.total.sent), 0);

    rc = (rc == 0 && ctx.total.acks > 0) ? AMONCLI_EXIT_OK
                                         : AMONCLI_EXIT_RUNTIME;

    amoncli_bench_free(&ctx);

    return rc;
}
