/*
 * Copyright (C) AMonitor authors
 *
 * "amonitor watch": a live table of targets built from the heartbeats,
 * events, acks and target_status messages a panel receives, and from the
 * agent's status endpoint, which lists every target (also those that have
 * not spoken yet); redrawn in place once a second, or printed once with
 * --once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "amoncli.h"


#define AMONCLI_WATCH_ONCE_TIMEOUT 6.0
#define AMONCLI_WATCH_RATE_SECONDS 5
#define AMONCLI_WATCH_RETRY_MS     2000
#define AMONCLI_WATCH_STATUS_MS    5000 /* how often the list is fetched */
/* slots of the index by id: a power of two, twice AMONCLI_MAX_TARGETS */
#define AMONCLI_WATCH_SLOTS (2 * AMONCLI_MAX_TARGETS)


typedef struct {
    char     id[AMON_MAX_ID_LEN + 1];
    char     status[16]; /* from target_status; "" when none */
    char     url[128];
    char     agent[16]; /* the agent's state of its connection, or "" */
    int64_t  status_at;
    int64_t  last_hb; /* monotonic ms (may be < 0); none while !heartbeats */
    uint64_t heartbeats;
    uint64_t events;
    uint64_t acks;
    uint64_t acks_failed;
    int64_t  bucket_sec[AMONCLI_WATCH_RATE_SECONDS];
    uint64_t bucket_n[AMONCLI_WATCH_RATE_SECONDS];
} amoncli_target_t;


typedef struct {
    amoncli_target_t *targets;
    unsigned          n;
    uint16_t         *slots; /* index by id: 1 + position, 0: empty */
    int               full_said; /* a target past the table: said once */
    uint64_t          messages;
    int               connected;
    int64_t           started;
    const char       *status_url; /* NULL: none */
    int64_t           next_status;
    int               status_failed; /* said so once */
    int               ansi; /* redraw in place */
    int               connect_ms;
    int64_t           end; /* --once: when to stop; -1: never */

    /* the snapshot a connection starts with (docs/protocol.md) */
    int               in_snapshot; /* nothing live seen yet */
    amoncli_target_t *snap_target; /* of the last target_status in it */
    int64_t           snap_now; /* its timestamp (agent's clock); -1: none */
    int64_t           snap_floor; /* down: the last heartbeat is this old */
    int64_t           next_draw;
    char              status_buf[512]; /* the status URL beside --url */
    const char       *subscribe; /* --subscribe: its ids and patterns */
} amoncli_watch_t;


static amoncli_target_t *
amoncli_watch_target(amoncli_watch_t *w, const char *id)
{
    size_t            len;
    uint32_t          i;
    amoncli_target_t *t;

    len = strlen(id);

    if (len > AMON_MAX_ID_LEN) {
        return NULL;
    }

    /* open addressing: the table is never more than half full */
    for (i = amon_hash((const unsigned char *) id, len);
         w->slots[i & (AMONCLI_WATCH_SLOTS - 1)]; i++) {
        t = &w->targets[w->slots[i & (AMONCLI_WATCH_SLOTS - 1)] - 1];
        if (strcmp(t->id, id) == 0) {
            return t;
        }
    }

    if (w->n == AMONCLI_MAX_TARGETS) {
        if (!w->full_said) {
            w->full_said = 1;
            fprintf(stderr,
                "amonitor watch: more than %d targets: the others are not "
                "shown (--subscribe chooses which)\n",
                AMONCLI_MAX_TARGETS);
        }
        return NULL;
    }

    w->slots[i & (AMONCLI_WATCH_SLOTS - 1)] = (uint16_t) (w->n + 1);
    t = &w->targets[w->n++];
    memset(t, 0, sizeof(*t));
    memcpy(t->id, id, len + 1);

    return t;
}


/*
 * Events per second over the last full seconds (up to four; fewer just
 * after the start), not counting the second in progress.
 */
static double
amoncli_watch_rate(const amoncli_target_t *t, int64_t now, int64_t started)
{
    unsigned i;
    uint64_t sum;
    int64_t  sec, first, span;

    sec = now / 1000;
    first = started / 1000 + 1; /* the first full second we saw */
    span = AMONCLI_WATCH_RATE_SECONDS - 1;

    if (sec - first < span) {
        span = sec - first;
    }

    if (span <= 0) {
        return 0;
    }

    sum = 0;

    for (i = 0; i < AMONCLI_WATCH_RATE_SECONDS; i++) {
        if (t->bucket_sec[i] < sec && t->bucket_sec[i] >= sec - span) {
            sum += t->bucket_n[i];
        }
    }

    return (double) sum / (double) span;
}


static void
amoncli_watch_count_event(amoncli_target_t *t, int64_t now)
{
    int64_t  sec;
    unsigned i;

    sec = now / 1000;
    i = (unsigned) (sec % AMONCLI_WATCH_RATE_SECONDS);

    if (t->bucket_sec[i] != sec) {
        t->bucket_sec[i] = sec;
        t->bucket_n[i] = 0;
    }

    t->bucket_n[i]++;
    t->events++;
}


static const char *
amoncli_watch_state(
    const amoncli_opts_t *o, const amoncli_target_t *t, int64_t now)
{
    if (t->status[0] && t->status_at >= t->last_hb) {
        return t->status;
    }

    if (t->heartbeats == 0) {
        /* not heard from: what the agent says about its connection */
        if (strcmp(t->agent, "backoff") == 0) {
            return "down";
        }

        return t->agent[0] ? t->agent : "?";
    }

    return (now - t->last_hb) < (int64_t) (o->stale * 1000) ? "up" : "down";
}


/*
 * A target_status: the agent's own message, {"target_id","state","url",
 * "since",...}.  One in the snapshot a connection starts with says, with
 * its timestamp and "since" (both the agent's clock), how old the
 * heartbeat the agent replays right after it is.
 */
static void
amoncli_watch_target_status(amoncli_watch_t *w, amoncli_target_t *t,
    unsigned opcode, const amon_envelope_t *env, int64_t now)
{
    cJSON *j, *v;

    if (opcode != AMON_WS_OP_TEXT || env->payload.data == NULL) {
        return;
    }

    j = cJSON_ParseWithLength(
        (const char *) env->payload.data, env->payload.len);
    v = cJSON_GetObjectItemCaseSensitive(j, "state");
    if (!cJSON_IsString(v)) {
        v = cJSON_GetObjectItemCaseSensitive(j, "status");
    }
    if (cJSON_IsString(v)) {
        snprintf(t->status, sizeof(t->status), "%s", v->valuestring);
        t->status_at = now;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (cJSON_IsString(v)) {
        snprintf(t->url, sizeof(t->url), "%s", v->valuestring);
    }

    if (w->in_snapshot) {
        w->snap_target = t;
        w->snap_now = env->has_timestamp ? env->timestamp : -1;
        w->snap_floor = 0;

        /* down since then: its last heartbeat came before */
        v = cJSON_GetObjectItemCaseSensitive(j, "since");
        if (w->snap_now > 0 && cJSON_IsNumber(v)
            && strcmp(t->status, "down") == 0) {
            w->snap_floor = w->snap_now - (int64_t) v->valuedouble;
        }
    }

    cJSON_Delete(j);
}


/*
 * A heartbeat is as old as its arrival, but not the one the agent
 * replays in the snapshot: that one is as old as its timestamp (the
 * SDK's clock) says, measured against the agent's clock (the timestamp of
 * the target_status before it) rather than ours, and never younger than
 * the time the target has been down, which the agent's clock alone
 * tells: an SDK clock that runs ahead cannot make a dead target look
 * alive.
 */
static void
amoncli_watch_heartbeat(amoncli_watch_t *w, amoncli_target_t *t,
    const amon_envelope_t *env, int64_t now)
{
    int64_t age;

    t->heartbeats++;

    if (!w->in_snapshot || t != w->snap_target) {
        t->last_hb = now;
        return;
    }

    w->snap_target = NULL;
    age = 0;

    if (env->has_timestamp && env->timestamp > 0) {
        age = (w->snap_now > 0 ? w->snap_now : amon_posix_wall_ms())
            - env->timestamp;
    }

    if (age < w->snap_floor) {
        age = w->snap_floor;
    }

    t->last_hb = now - (age > 0 ? age : 0);

    /* it came before the target_status: that one tells the state */
    if (t->status[0] && t->last_hb > t->status_at) {
        t->last_hb = t->status_at;
    }
}


static void
amoncli_watch_message(amoncli_watch_t *w, unsigned opcode,
    const unsigned char *p, size_t len, int64_t now)
{
    char              id[AMON_MAX_ID_LEN + 1];
    amon_str_t        tid;
    amon_envelope_t  *env;
    amoncli_target_t *t;

    env = malloc(sizeof(amon_envelope_t));
    if (env == NULL) {
        return;
    }

    if (amoncli_decode(env, opcode, p, len) != AMON_OK) {
        amon_envelope_release(env);
        free(env);
        return;
    }

    w->messages++;

    tid = env->target_id.len ? env->target_id : env->payload_target_id;

    if (tid.len == 0 || tid.len > AMON_MAX_ID_LEN) {
        amon_envelope_release(env);
        free(env);
        return;
    }

    memcpy(id, tid.data, tid.len);
    id[tid.len] = '\0';

    t = amoncli_watch_target(w, id);

    /* the snapshot: target_status, each maybe with its heartbeat */
    if (env->type != AMON_MSG_TARGET_STATUS
        && (env->type != AMON_MSG_HEARTBEAT || t == NULL
            || t != w->snap_target)) {
        w->in_snapshot = 0;
    }

    if (t) {
        switch (env->type) {

        case AMON_MSG_HEARTBEAT: amoncli_watch_heartbeat(w, t, env, now); break;

        case AMON_MSG_EVENT: amoncli_watch_count_event(t, now); break;

        case AMON_MSG_ACTION_ACK:
            t->acks++;
            if (!env->success) {
                t->acks_failed++;
            }
            break;

        case AMON_MSG_TARGET_STATUS:
            amoncli_watch_target_status(w, t, opcode, env, now);
            break;

        default: break;
        }
    }

    amon_envelope_release(env);
    free(env);
}


/* Does --subscribe name this id or match it with a pattern? */
static int
amoncli_watch_chosen(const amoncli_watch_t *w, const char *id)
{
    const char *p, *comma;

    for (p = w->subscribe; /* void */; p = comma + 1) {
        comma = strchr(p, ',');

        if (amon_glob_match((const unsigned char *) p,
                comma ? (size_t) (comma - p) : strlen(p),
                (const unsigned char *) id, strlen(id))) {
            return 1;
        }

        if (comma == NULL) {
            return 0;
        }
    }
}


/* the ids of --subscribe, like --target-id's, are listed from the start */
static void
amoncli_watch_ids(amoncli_opts_t *o, amoncli_watch_t *w)
{
    size_t      n;
    char        id[AMON_MAX_ID_LEN + 1];
    const char *s;

    w->subscribe = o->subscribe;

    for (s = o->subscribe; /* void */; s += n + 1) {
        n = strcspn(s, ",");

        if (memchr(s, '*', n) == NULL && n <= AMON_MAX_ID_LEN) {
            sprintf(id, "%.*s", (int) n, s);
            amoncli_watch_target(w, id);
        }

        if (s[n] == '\0') {
            return;
        }
    }
}


/* the targets the agent has, from its status endpoint */
static void
amoncli_watch_status(amoncli_watch_t *w, int timeout_ms)
{
    char              err[256];
    cJSON            *j, *list, *e, *v;
    amoncli_target_t *t;

    if (w->status_url == NULL) {
        return;
    }

    j = amoncli_status_fetch(w->status_url, timeout_ms, err, sizeof(err));

    if (j == NULL) {
        if (!w->status_failed) {
            w->status_failed = 1;
            amoncli_tprintf(stderr,
                "amonitor watch: no target list from %s: %s "
                "(targets show once they speak; --status-url)\n",
                w->status_url, err);
        }
        return;
    }

    w->status_failed = 0;
    list = cJSON_GetObjectItemCaseSensitive(j, "targets");

    cJSON_ArrayForEach(e, list)
    {
        v = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsString(v)) {
            continue;
        }

        if (w->subscribe && !amoncli_watch_chosen(w, v->valuestring)) {
            continue;
        }

        t = amoncli_watch_target(w, v->valuestring);
        if (t == NULL) {
            continue;
        }

        v = cJSON_GetObjectItemCaseSensitive(e, "state");
        if (cJSON_IsString(v)) {
            snprintf(t->agent, sizeof(t->agent), "%s", v->valuestring);
        }

        v = cJSON_GetObjectItemCaseSensitive(e, "url");
        if (cJSON_IsString(v) && t->url[0] == '\0') {
            snprintf(t->url, sizeof(t->url), "%s", v->valuestring);
        }
    }

    cJSON_Delete(j);
}


static void
amoncli_watch_render(const amoncli_opts_t *o, amoncli_watch_t *w, int ansi)
{
    unsigned          i;
    int64_t           now;
    char              ts[32], age[32];
    cJSON            *j;
    char             *s;
    amoncli_target_t *t;

    now = amon_posix_now_ms();

    if (o->json) {
        for (i = 0; i < w->n; i++) {
            t = &w->targets[i];
            j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "event", "target");
            cJSON_AddNumberToObject(j, "time", (double) amon_posix_wall_ms());
            cJSON_AddStringToObject(j, "target_id", t->id);
            cJSON_AddStringToObject(j, "state", amoncli_watch_state(o, t, now));
            if (t->agent[0]) {
                cJSON_AddStringToObject(j, "agent_state", t->agent);

            } else {
                cJSON_AddNullToObject(j, "agent_state");
            }
            if (t->heartbeats) {
                cJSON_AddNumberToObject(
                    j, "heartbeat_age_ms", (double) (now - t->last_hb));

            } else {
                cJSON_AddNullToObject(j, "heartbeat_age_ms");
            }
            cJSON_AddNumberToObject(j, "heartbeats", (double) t->heartbeats);
            cJSON_AddNumberToObject(j, "events", (double) t->events);
            cJSON_AddNumberToObject(
                j, "events_per_s", amoncli_watch_rate(t, now, w->started));
            cJSON_AddNumberToObject(j, "acks", (double) t->acks);
            cJSON_AddNumberToObject(j, "acks_failed", (double) t->acks_failed);
            s = cJSON_PrintUnformatted(j);
            if (s) {
                printf("%s\n", s);
            }
            cJSON_free(s);
            cJSON_Delete(j);
        }
        return;
    }

    amoncli_clock(ts, sizeof(ts));

    if (ansi) {
        printf("\033[H\033[2J");
    }

    amoncli_tprintf(stdout, "amonitor watch  %s  %s  %s, %llu messages\n",
        o->url, ts, w->connected ? "connected" : "disconnected",
        (unsigned long long) w->messages);
    putchar('\n');

    printf("%-24s %-6s %-9s %-9s %-9s %-8s\n", "TARGET", "STATE", "LAST HB",
        "EVENTS/S", "EVENTS", "ACKS");

    for (i = 0; i < w->n; i++) {
        t = &w->targets[i];

        if (t->heartbeats) {
            snprintf(
                age, sizeof(age), "%.1fs", (double) (now - t->last_hb) / 1000);

        } else {
            snprintf(age, sizeof(age), "-");
        }

        amoncli_tprintf(stdout, "%-24s %-6s %-9s %-9.1f %-9llu %llu\n", t->id,
            amoncli_watch_state(o, t, now), age,
            amoncli_watch_rate(t, now, w->started),
            (unsigned long long) t->events, (unsigned long long) t->acks);
    }

    if (w->n == 0) {
        printf("(no targets seen yet)\n");
    }

    fflush(stdout);
}


/* Sleep, but wake for SIGINT. */
static void
amoncli_watch_pause(int ms)
{
    while (ms > 0 && !amoncli_interrupted) {
        amoncli_sleep_ms(ms > 100 ? 100 : ms);
        ms -= 100;
    }
}


/* The table, the options' targets, the status URL; 0 or -1 (said so). */
static int
amoncli_watch_init(amoncli_opts_t *o, amoncli_watch_t *w)
{
    unsigned i;

    memset(w, 0, sizeof(*w));

    w->targets = calloc(AMONCLI_MAX_TARGETS, sizeof(amoncli_target_t));
    w->slots = calloc(AMONCLI_WATCH_SLOTS, sizeof(uint16_t));
    if (w->targets == NULL || w->slots == NULL) {
        fprintf(stderr, "amonitor watch: out of memory\n");
        free(w->targets);
        free(w->slots);
        return -1;
    }

    for (i = 0; i < o->ntarget_ids; i++) {
        amoncli_watch_target(w, o->target_ids[i]);
    }

    if (o->status_url) {
        w->status_url = strcmp(o->status_url, "none") ? o->status_url : NULL;

    } else if (amoncli_status_url(o->url, w->status_buf, sizeof(w->status_buf))
        == 0) {
        w->status_url = w->status_buf;
    }

    if (o->subscribe) {
        amoncli_watch_ids(o, w);
    }

    if (o->once && o->timeout < 0) {
        o->timeout = AMONCLI_WATCH_ONCE_TIMEOUT;
    }

    w->ansi = !o->once && !o->json && isatty(STDOUT_FILENO);
    w->connect_ms = o->timeout > 0 ? (int) (o->timeout * 1000) : 5000;

    w->started = amon_posix_now_ms();
    w->end = o->once ? w->started + (int64_t) (o->timeout * 1000) : -1;
    w->next_draw = w->started;

    return 0;
}


/*
 * One connection: counts what arrives, fetches the target list now and
 * then, redraws once a second (live).  Returns what the last
 * amoncli_ws_recv() did: -1 when the connection ended (said so).
 */
static int
amoncli_watch_session(
    const amoncli_opts_t *o, amoncli_watch_t *w, amoncli_ws_t *ws)
{
    int                  rc, wait_ms;
    size_t               len;
    unsigned             opcode;
    int64_t              now;
    char                 err[256];
    const unsigned char *p;

    rc = 0;

    while (!amoncli_interrupted) {
        now = amon_posix_now_ms();

        if (now >= w->next_status) {
            amoncli_watch_status(
                w, w->connect_ms < 2000 ? w->connect_ms : 2000);
            w->next_status =
                o->once ? INT64_MAX : now + AMONCLI_WATCH_STATUS_MS;
            now = amon_posix_now_ms();
        }

        if (w->end >= 0 && now >= w->end) {
            break;
        }

        if (!o->once && now >= w->next_draw) {
            amoncli_watch_render(o, w, w->ansi);
            w->next_draw = now + 1000;
        }

        wait_ms = o->once ? (int) (w->end - now) : (int) (w->next_draw - now);

        rc = amoncli_ws_recv(ws, wait_ms, &opcode, &p, &len, err, sizeof(err));

        if (rc == 1) {
            amoncli_watch_message(w, opcode, p, len, amon_posix_now_ms());
            if (o->verbose) {
                amoncli_print_message(o, "recv", opcode, p, len);
            }
            continue;
        }

        if (rc < 0) {
            w->connected = 0;
            amoncli_tprintf(stderr, "amonitor watch: %s\n", err);
            break;
        }
    }

    return rc;
}


int
amoncli_cmd_watch(amoncli_opts_t *o)
{
    int             rc;
    amoncli_ws_t    ws;
    amoncli_watch_t w;

    if (amoncli_watch_init(o, &w) != 0) {
        return AMONCLI_EXIT_RUNTIME;
    }

    rc = 0;

    /*
     * --once: one connection; live: reconnect 2 s after a failure, at
     * once after the agent's 1012 or 1001
     */
    while (!amoncli_interrupted) {
        if (amoncli_connect(&ws, o, w.connect_ms) != 0) {
            rc = -1;
            if (o->once) {
                break;
            }

            amoncli_watch_render(o, &w, w.ansi);
            amoncli_watch_pause(AMONCLI_WATCH_RETRY_MS);
            continue;
        }

        w.connected = 1;
        w.in_snapshot = 1;
        w.snap_target = NULL;

        rc = amoncli_watch_session(o, &w, &ws);

        amoncli_ws_close(&ws, AMON_WS_CLOSE_NORMAL);

        if (o->once || rc >= 0) {
            break;
        }

        amoncli_watch_render(o, &w, w.ansi);

        /* a reload or stop (1012, 1001): the new workers are there now */
        if (!amoncli_ws_closed_to_reconnect(&ws)) {
            amoncli_watch_pause(AMONCLI_WATCH_RETRY_MS);
        }
    }

    if (rc >= 0 || !o->once) {
        amoncli_watch_render(o, &w, w.ansi);
    }

    free(w.targets);
    free(w.slots);

    return rc < 0 && o->once ? AMONCLI_EXIT_RUNTIME : AMONCLI_EXIT_OK;
}
