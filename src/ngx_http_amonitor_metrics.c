/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor_metrics": the zone's counters, the state of every target and
 * the action round-trip histogram in the Prometheus text exposition
 * format 0.0.4, the same whichever worker answers.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"


/*
 * bytes of a target's line beyond its label value: the longest name (42),
 * {target=""} and a space (12), the longest value (24) and the newline
 */
#define NGX_HTTP_AMONITOR_METRIC_LINE   80
#define NGX_HTTP_AMONITOR_METRIC_SERIES 4 /* per target */


typedef struct {
    const char *name;
    const char *type;
    const char *help;
    size_t      offset; /* in the counters */
} ngx_http_amonitor_metric_t;


static u_char *ngx_http_amonitor_metrics_head(
    u_char *p, const char *name, const char *type, const char *help);
static u_char   *ngx_http_amonitor_metrics_value(u_char *p, const char *name,
      const char *type, const char *help, ngx_atomic_uint_t v);
static u_char   *ngx_http_amonitor_metrics_label(u_char *p, ngx_str_t *v);
static size_t    ngx_http_amonitor_metrics_target_len(u_char *v, size_t len);
static ngx_int_t ngx_http_amonitor_metrics_unseen(ngx_http_request_t *r,
    ngx_http_amonitor_worker_t *w, ngx_array_t *unseen, size_t *len);
static u_char   *ngx_http_amonitor_metrics_targets(u_char *p,
      ngx_http_amonitor_worker_t *w, ngx_http_amonitor_shared_t *sh, ngx_uint_t n,
      ngx_array_t *unseen);
static u_char   *ngx_http_amonitor_metrics_rtt(
      u_char *p, ngx_http_amonitor_shared_t *sh);
static u_char *ngx_http_amonitor_metrics_redis(u_char *p,
    ngx_http_amonitor_shared_t *sh, ngx_http_amonitor_counters_t *sum);


#define ngx_http_amonitor_counter(field) \
    offsetof(ngx_http_amonitor_counters_t, field)

static ngx_http_amonitor_metric_t ngx_http_amonitor_metrics[] = {
    {"amonitor_panels", "gauge", "Panels connected now.",
        ngx_http_amonitor_counter(panels)},
    {"amonitor_upstream_connections", "gauge",
        "Open connections to SDKs, all workers together.",
        ngx_http_amonitor_counter(upstreams_open)},
    {"amonitor_forwarded_total", "counter",
        "Heartbeats and events relayed, once per message and worker "
        "connection to its SDK (each worker has its own), whether or not "
        "a panel is connected.",
        ngx_http_amonitor_counter(forwarded)},
    {"amonitor_dropped_total", "counter",
        "Heartbeats and events dropped for a panel: slow, or no form in "
        "the encoding it chose.",
        ngx_http_amonitor_counter(dropped)},
    {"amonitor_actions_total", "counter", "Actions written to SDKs.",
        ngx_http_amonitor_counter(actions)},
    {"amonitor_duplicates_total", "counter",
        "Actions answered \"duplicate ignored\".",
        ngx_http_amonitor_counter(duplicates)},
    {"amonitor_ack_timeouts_total", "counter",
        "Actions without an ack within amonitor_ack_timeout.",
        ngx_http_amonitor_counter(ack_timeouts)},
    {"amonitor_evictions_total", "counter",
        "Live dedupe entries evicted because the zone was full.",
        ngx_http_amonitor_counter(evictions)},
    {"amonitor_invalid_messages_total", "counter",
        "Invalid messages from panels and SDKs.",
        ngx_http_amonitor_counter(invalid)},
    {"amonitor_forbidden_total", "counter",
        "Actions refused: outside the rights of the panel's token.",
        ngx_http_amonitor_counter(forbidden)},
    {"amonitor_oversize_closes_total", "counter",
        "Panels closed for holding more than "
        "amonitor_connection_buffer_limit.",
        ngx_http_amonitor_counter(oversize)},
    {NULL, NULL, NULL, 0}};


ngx_int_t
ngx_http_amonitor_metrics_handler(ngx_http_request_t *r)
{
    size_t                         len;
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    ngx_buf_t                     *b;
    ngx_array_t                    unseen;
    ngx_atomic_t                  *v;
    ngx_http_amonitor_tstate_t    *ts;
    ngx_http_amonitor_metric_t    *m;
    ngx_http_amonitor_shared_t    *sh;
    ngx_http_amonitor_registry_t  *rg;
    ngx_http_amonitor_counters_t   sum;
    ngx_http_amonitor_worker_t    *w;
    ngx_http_amonitor_main_conf_t *amcf;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return ngx_http_amonitor_not_allowed(r);
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_amonitor_module);
    w = amcf->worker;

    if (w == NULL || amcf->shm_zone == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    sh = ngx_http_amonitor_store_shm_shared(amcf->shm_zone);
    ngx_http_amonitor_store_counters_sum(amcf->shm_zone, &sum);

    /*
     * each target: a line of each series, with its id escaped; the
     * records counted now are the ones written (later ones wait)
     */
    n = sh->ntargets;
    ngx_memory_barrier(); /* the chunks counted are read after the count */
    len = 8192 + NGX_HTTP_AMONITOR_RTT_BUCKETS * 64;

    for (i = 0; i < n; i++) {
        ts = ngx_http_amonitor_tracked(sh, i);
        len += ngx_http_amonitor_metrics_target_len(ts->data, ts->id_len);
    }

    if (ngx_http_amonitor_metrics_unseen(r, w, &unseen, &len) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    p = ngx_http_amonitor_metrics_head(
        p, "amonitor_info", "gauge", "The module's version; always 1.");
    p = ngx_sprintf(
        p, "amonitor_info{version=\"" NGX_HTTP_AMONITOR_VERSION "\"} 1\n");

    for (m = ngx_http_amonitor_metrics; m->name; m++) {
        v = (ngx_atomic_t *) ((u_char *) &sum + m->offset);
        p = ngx_http_amonitor_metrics_value(p, m->name, m->type, m->help, *v);
    }

    p = ngx_http_amonitor_metrics_head(p, "amonitor_action_outcomes_total",
        "counter", "Final answers to actions, by outcome.");
    p = ngx_sprintf(p,
        "amonitor_action_outcomes_total{outcome=\"ack\"} %uA\n"
        "amonitor_action_outcomes_total{outcome=\"duplicate\"} %uA\n"
        "amonitor_action_outcomes_total{outcome=\"error\"} %uA\n",
        sum.acks, sum.duplicates, sum.errors);

    if (amcf->redis) {
        p = ngx_http_amonitor_metrics_redis(p, sh, &sum);
    }

    rg = ngx_http_amonitor_store_shm_registry(amcf->shm_zone);

    p = ngx_http_amonitor_metrics_value(p, "amonitor_learned_targets", "gauge",
        "Targets in the registry of learned targets (registers, dials).",
        rg->n);
    p = ngx_http_amonitor_metrics_value(p, "amonitor_learned_refused_total",
        "counter",
        "Learned targets refused: amonitor_learned_limit reached or "
        "the zone full.",
        rg->refused);

    p = ngx_http_amonitor_metrics_targets(p, w, sh, n, &unseen);
    p = ngx_http_amonitor_metrics_rtt(p, sh);

    b->last = p;

    return ngx_http_amonitor_status_send(r, b, "text/plain; version=0.0.4");
}


static u_char *
ngx_http_amonitor_metrics_head(
    u_char *p, const char *name, const char *type, const char *help)
{
    return ngx_sprintf(
        p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


/* a series of one unlabelled sample, with its HELP and TYPE */
static u_char *
ngx_http_amonitor_metrics_value(u_char *p, const char *name, const char *type,
    const char *help, ngx_atomic_uint_t v)
{
    p = ngx_http_amonitor_metrics_head(p, name, type, help);

    return ngx_sprintf(p, "%s %uA\n", name, v);
}


/* with amonitor_redis: the workers connected, the claims open, refused */
static u_char *
ngx_http_amonitor_metrics_redis(u_char *p, ngx_http_amonitor_shared_t *sh,
    ngx_http_amonitor_counters_t *sum)
{
    p = ngx_http_amonitor_metrics_value(p, "amonitor_redis_connections",
        "gauge", "Workers whose connection to Redis is usable.",
        sum->redis_connections);
    p = ngx_http_amonitor_metrics_value(p, "amonitor_redis_claims", "gauge",
        "Redis claims open: being made, held by an action, or waiting "
        "to be finished or released (at most claims= per worker).",
        sum->redis_claims);

    return ngx_http_amonitor_metrics_value(p,
        "amonitor_redis_claims_refused_total", "counter",
        "Actions answered RATE_LIMITED because their worker had "
        "claims= Redis claims open.",
        sum->redis_refused);
}


/* a label value: backslash, double quote and newline escaped */
static u_char *
ngx_http_amonitor_metrics_label(u_char *p, ngx_str_t *v)
{
    size_t i;

    for (i = 0; i < v->len; i++) {
        switch (v->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = v->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default: *p++ = v->data[i];
        }
    }

    return p;
}


/* the bytes of a target's lines at most, its id "v" escaped */
static size_t
ngx_http_amonitor_metrics_target_len(u_char *v, size_t len)
{
    size_t i, n;

    n = len;

    for (i = 0; i < len; i++) {
        if (v[i] == '\\' || v[i] == '"' || v[i] == '\n') {
            n++;
        }
    }

    return NGX_HTTP_AMONITOR_METRIC_SERIES
        * (NGX_HTTP_AMONITOR_METRIC_LINE + n);
}


/*
 * This worker's targets that no worker has seen up or down yet (a first
 * dial still under way): the zone has no record of them, and they are
 * told as down, with no action yet, rather than left out.
 */
static ngx_int_t
ngx_http_amonitor_metrics_unseen(ngx_http_request_t *r,
    ngx_http_amonitor_worker_t *w, ngx_array_t *unseen, size_t *len)
{
    ngx_str_t                    *id;
    ngx_queue_t                  *q;
    ngx_http_amonitor_upstream_t *u;

    if (ngx_array_init(unseen, r->pool, 4, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    for (q = ngx_queue_head(&w->upstreams);
         q != ngx_queue_sentinel(&w->upstreams); q = ngx_queue_next(q)) {
        u = ngx_queue_data(q, ngx_http_amonitor_upstream_t, queue);

        if (u->tstate
            || ngx_http_amonitor_store_target_known(w->store, &u->id, NULL)) {
            continue;
        }

        id = ngx_array_push(unseen);
        if (id == NULL) {
            return NGX_ERROR;
        }

        *id = u->id;
        *len += ngx_http_amonitor_metrics_target_len(u->id.data, u->id.len);
    }

    return NGX_OK;
}


/*
 * Per target, from the zone: up, heartbeat age, actions and failures;
 * then the targets of this worker not seen yet.  Targets of an older
 * configuration that this one no longer has are left out, as in a new
 * panel's snapshot.
 */
static u_char *
ngx_http_amonitor_metrics_targets(u_char *p, ngx_http_amonitor_worker_t *w,
    ngx_http_amonitor_shared_t *sh, ngx_uint_t n, ngx_array_t *unseen)
{
    uint64_t                    now, at;
    ngx_str_t                   id, *ids;
    ngx_uint_t                  i, k;
    ngx_time_t                 *tp;
    ngx_http_amonitor_tstate_t *ts;

    static const char *names[] = {"amonitor_target_up",
        "amonitor_target_last_heartbeat_age_seconds",
        "amonitor_target_actions_total", "amonitor_target_failures_total"};
    static const char *types[] = {"gauge", "gauge", "counter", "counter"};
    static const char *helps[] = {
        "1 while at least one worker has a connection to the target open.",
        "Seconds since the target's last heartbeat reached the agent.",
        "Actions this nginx instance wrote to the target.",
        "Actions to the target that ended in an error or failed ack."};

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    for (k = 0; k < 4; k++) {
        p = ngx_http_amonitor_metrics_head(p, names[k], types[k], helps[k]);

        for (i = 0; i < n; i++) {
            ts = ngx_http_amonitor_tracked(sh, i);
            id.data = ts->data;
            id.len = ts->id_len;

            if (ts->forgotten
                || (!ts->dynamic
                    && ngx_http_amonitor_target_find(w, &id) == NULL)) {
                continue;
            }

            at = ts->hb_at;

            if (k == 1 && at == 0) {
                continue;
            }

            p = ngx_sprintf(p, "%s{target=\"", names[k]);
            p = ngx_http_amonitor_metrics_label(p, &id);
            p = ngx_sprintf(p, "\"} ");

            switch (k) {

            case 0: p = ngx_sprintf(p, "%ui\n", (ngx_uint_t) ts->state); break;

            case 1:
                at = now > at ? now - at : 0;
                p = ngx_sprintf(p, "%uL.%03uL\n", at / 1000, at % 1000);
                break;

            case 2: p = ngx_sprintf(p, "%uA\n", ts->actions); break;

            default: p = ngx_sprintf(p, "%uA\n", ts->failures);
            }
        }

        ids = unseen->elts;

        for (i = 0; k != 1 && i < unseen->nelts; i++) {
            p = ngx_sprintf(p, "%s{target=\"", names[k]);
            p = ngx_http_amonitor_metrics_label(p, &ids[i]);
            p = ngx_sprintf(p, "\"} 0\n");
        }
    }

    return p;
}


/* the round trip of actions, forward to ack, all workers together */
static u_char *
ngx_http_amonitor_metrics_rtt(u_char *p, ngx_http_amonitor_shared_t *sh)
{
    ngx_uint_t        i;
    ngx_atomic_uint_t cum, sum;

    p = ngx_http_amonitor_metrics_head(p, "amonitor_action_rtt_seconds",
        "histogram",
        "Round trip of an action in the agent, from writing it to the SDK "
        "to its ack.");

    cum = 0;

    /* the bounds of ngx_http_amonitor_rtt_bounds (ms), as Go prints them */
    static const char *le[NGX_HTTP_AMONITOR_RTT_BUCKETS - 1] = {"0.001",
        "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
        "2.5", "5", "10"};

    for (i = 0; i < NGX_HTTP_AMONITOR_RTT_BUCKETS - 1; i++) {
        cum += sh->rtt[i];
        p = ngx_sprintf(p,
            "amonitor_action_rtt_seconds_bucket{le=\"%s\"} %uA\n", le[i], cum);
    }

    cum += sh->rtt[i];
    sum = sh->rtt_sum_us;

    p = ngx_sprintf(p,
        "amonitor_action_rtt_seconds_bucket{le=\"+Inf\"} %uA\n"
        "amonitor_action_rtt_seconds_sum %uA.%06uA\n"
        "amonitor_action_rtt_seconds_count %uA\n",
        cum, sum / 1000000, sum % 1000000, cum);

    return p;
}
