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


int
amoncli_cmd_bench(amoncli_opts_t *o)
{
    int                  rc, wait_ms, draining;
    size_t               len, plen;
    unsigned             opcode, ntargets, ti;
    uint64_t             seq, s, due, done;
    int64_t              start, now, next_print, end, drain_end, next_send;
    char                 run[9], prefix[32], id[64], err[256];
    const char          *tid, *turl, *params;
    amon_buf_t           b;
    amoncli_ws_t         ws;
    amoncli_slot_t      *ring, *slot;
    amoncli_window_t     win, total;
    amon_envelope_t     *env;
    const unsigned char *p;

    static const char *def_ids[] = {"demo-target-a", "demo-target-b"};

    if (o->ntarget_ids == 0 && o->ntarget_urls == 0) {
        o->target_ids[0] = def_ids[0];
        o->target_ids[1] = def_ids[1];
        o->ntarget_ids = 2;
    }

    ntargets =
        o->ntarget_ids > o->ntarget_urls ? o->ntarget_ids : o->ntarget_urls;
    params = o->params ? o->params : "{\"from\":\"amonitor-bench\"}";

    memset(&win, 0, sizeof(win));
    memset(&total, 0, sizeof(total));
    memset(&b, 0, sizeof(b));

    ring = calloc(AMONCLI_BENCH_RING, sizeof(amoncli_slot_t));
    env = malloc(sizeof(amon_envelope_t));
    win.cap = 1u << 16;
    win.lat = malloc(win.cap * sizeof(float));
    total.cap = AMONCLI_BENCH_SAMPLES;
    total.lat = malloc(total.cap * sizeof(float));

    if (ring == NULL || env == NULL || win.lat == NULL || total.lat == NULL) {
        fprintf(stderr, "amonitor bench: out of memory\n");
        free(ring);
        free(env);
        free(win.lat);
        free(total.lat);
        return AMONCLI_EXIT_RUNTIME;
    }

    amon_posix_uuid4(id);
    memcpy(run, id, 8);
    run[8] = '\0';
    plen = (size_t) snprintf(prefix, sizeof(prefix), "bench-%s-", run);

    if (amoncli_connect(
            &ws, o, o->timeout > 0 ? (int) (o->timeout * 1000) : 5000)
        != 0) {
        free(ring);
        free(env);
        free(win.lat);
        free(total.lat);
        return AMONCLI_EXIT_RUNTIME;
    }

    if (!o->json) {
        printf("bench: %g actions/s over %u target(s) via %s, run %s%s\n",
            o->rate, ntargets, o->url, run,
            o->duration > 0 ? "" : " (Ctrl-C to stop)");
    }

    start = amoncli_now_us();
    next_print = start + 1000000;
    end = o->duration > 0 ? start + (int64_t) (o->duration * 1e6) : -1;
    drain_end = -1;
    draining = 0;
    seq = 0;
    ti = 0;
    rc = 0;

    for (;;) {
        now = amoncli_now_us();

        if (!draining && (amoncli_interrupted || (end >= 0 && now >= end))) {
            draining = 1;
            drain_end = now + AMONCLI_BENCH_DRAIN * 1000;
        }

        done = total.acks + total.errors + win.acks + win.errors;

        if (draining && (now >= drain_end || done >= total.sent + win.sent)) {
            break;
        }

        /* send what the schedule says is due by now */
        if (!draining) {
            due = (uint64_t) ((double) (now - start) * o->rate / 1e6) + 1;

            while (seq < due) {
                if (total.sent + win.sent - done >= o->max_inflight) {
                    win.throttled += due - seq;
                    seq = due;
                    break;
                }

                seq++;
                snprintf(
                    id, sizeof(id), "%s%llu", prefix, (unsigned long long) seq);

                tid =
                    o->ntarget_ids ? o->target_ids[ti % o->ntarget_ids] : NULL;
                turl = o->ntarget_urls ? o->target_urls[ti % o->ntarget_urls]
                                       : NULL;
                ti++;

                if (amoncli_build_action(&b, id, tid, turl,
                        o->action ? o->action : "restart", params, o->binary)
                    != AMON_OK) {
                    fprintf(stderr,
                        "amonitor bench: cannot build an "
                        "action\n");
                    rc = -1;
                    break;
                }

                slot = &ring[seq % AMONCLI_BENCH_RING];
                slot->seq = seq;
                slot->sent_us = amoncli_now_us();

                if (amoncli_ws_send(&ws,
                        o->binary ? AMON_WS_OP_BINARY : AMON_WS_OP_TEXT, b.data,
                        b.len, 5000)
                    != 0) {
                    snprintf(err, sizeof(err), "send failed");
                    rc = -1;
                    break;
                }

                win.sent++;
            }

            if (rc < 0) {
                fprintf(stderr, "amonitor bench: %s\n", err);
                break;
            }
        }

        now = amoncli_now_us();

        if (now >= next_print) {
            amoncli_bench_print(o, "bench", (double) (now - start) / 1e6, 1.0,
                &win, total.sent + win.sent - done, 0);

            total.sent += win.sent;
            total.acks += win.acks;
            total.acks_failed += win.acks_failed;
            total.errors += win.errors;
            total.events += win.events;
            total.duplicates += win.duplicates;
            total.throttled += win.throttled;
            win.sent = win.acks = win.acks_failed = win.errors = 0;
            win.events = win.duplicates = win.throttled = 0;
            win.nlat = 0;

            next_print += 1000000;
            if (next_print <= now) {
                next_print = now + 1000000;
            }
        }

        next_send = draining ? next_print
                             : start + (int64_t) ((double) seq * 1e6 / o->rate);
        if (next_send > next_print) {
            next_send = next_print;
        }
        if (draining && drain_end < next_send) {
            next_send = drain_end;
        }

        wait_ms = next_send > now ? (int) ((next_send - now + 999) / 1000) : 0;

        rc = amoncli_ws_recv(&ws, wait_ms, &opcode, &p, &len, err, sizeof(err));

        if (rc < 0) {
            fprintf(stderr, "amonitor bench: %s\n", err);
            break;
        }

        /* take everything already buffered before sending more */
        while (rc == 1) {
            if (amoncli_decode(env, opcode, p, len) == AMON_OK) {
                switch (env->type) {

                case AMON_MSG_ACTION_ACK:
                    s = amoncli_bench_seq(env->action_msg_id, prefix, plen);
                    if (s == 0) {
                        break;
                    }

                    slot = &ring[s % AMONCLI_BENCH_RING];
                    if (slot->seq == s && slot->sent_us) {
                        float ms;

                        ms = (float) (amoncli_now_us() - slot->sent_us)
                            / 1000.0f;
                        slot->sent_us = 0;
                        amoncli_sample(&win, ms);
                        amoncli_sample(&total, ms);
                    }

                    win.acks++;
                    if (!env->success) {
                        win.acks_failed++;
                    }
                    if (env->message.len
                        && memmem(env->message.data, env->message.len,
                            "duplicate ignored", 17)) {
                        win.duplicates++;
                    }
                    break;

                case AMON_MSG_ERROR:
                    /* a progress notice (final:false) is not an outcome */
                    if (amoncli_bench_seq(env->msg_id, prefix, plen)
                        && !(env->has_final && !env->final)) {
                        win.errors++;
                        if (o->verbose) {
                            amoncli_print_message(o, "recv", opcode, p, len);
                        }
                    }
                    break;

                case AMON_MSG_HEARTBEAT:
                case AMON_MSG_EVENT: win.events++; break;

                default: break;
                }
            }

            amon_envelope_release(env);

            rc = amoncli_ws_recv(&ws, 0, &opcode, &p, &len, err, sizeof(err));
        }

        if (rc < 0) {
            fprintf(stderr, "amonitor bench: %s\n", err);
            break;
        }

        rc = 0;
    }

    amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

    total.sent += win.sent;
    total.acks += win.acks;
    total.acks_failed += win.acks_failed;
    total.errors += win.errors;
    total.events += win.events;
    total.duplicates += win.duplicates;
    total.throttled += win.throttled;

    now = amoncli_now_us();
    done = total.acks + total.errors;

    {
        double secs = (double) (now - start) / 1e6;

        if (secs <= 0) {
            secs = 1;
        }

        amoncli_bench_print(o, "bench_summary", secs, secs, &total,
            total.sent - (done < total.sent ? done : total.sent), 0);
    }

    amon_buf_free(&b, NULL);
    free(ring);
    free(env);
    free(win.lat);
    free(total.lat);

    return (rc == 0 && total.acks > 0) ? AMONCLI_EXIT_OK : AMONCLI_EXIT_RUNTIME;
}
