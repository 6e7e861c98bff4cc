/*
 * Copyright (C) AMonitor authors
 *
 * A monitored program for the SDK tests: registers handlers that exercise
 * every path (sync, async, early ack, emit from other threads, bad ack
 * text), prints "PORT n" once listening and obeys stdin commands:
 * "emit NAME JSON", "stats", "stop" (or EOF).
 */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "amonitor.h"


typedef struct {
    amonitor_sdk_t *ctx;
    int             verbose;
    int             log_stdout; /* "LOG level text" lines */
    int             threads; /* helper threads still running */
    long            actions;
    pthread_mutex_t lock;
    pthread_cond_t  done;
} host_t;


typedef struct {
    host_t *host;
    char    msg_id[300];
    long    ms;
    long    count;
    long    size;
    long    pause_us;
    int     success;
} job_t;


static long
host_param(const char *params, const char *name, long dflt)
{
    cJSON *j, *v;
    long   r;

    r = dflt;
    j = cJSON_Parse(params);
    v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (cJSON_IsNumber(v)) {
        r = (long) v->valuedouble;
    }
    cJSON_Delete(j);

    return r;
}


static void
host_thread_done(host_t *h)
{
    pthread_mutex_lock(&h->lock);
    h->threads--;
    pthread_cond_broadcast(&h->done);
    pthread_mutex_unlock(&h->lock);
}


static int
host_spawn(host_t *h, void *(*fn)(void *), job_t *job, int detach)
{
    pthread_t t;

    pthread_mutex_lock(&h->lock);
    h->threads++;
    pthread_mutex_unlock(&h->lock);

    if (pthread_create(&t, NULL, fn, job) != 0) {
        host_thread_done(h);
        free(job);
        return -1;
    }

    if (detach) {
        pthread_detach(t);
        return 0;
    }

    pthread_join(t, NULL);

    return 0;
}


static void *
host_slow_ack(void *arg)
{
    job_t  *job = arg;
    host_t *h = job->host;
    int     rc;

    usleep((useconds_t) job->ms * 1000);
    rc = amonitor_sdk_ack(h->ctx, job->msg_id, job->success, "slow done");
    if (rc != AMONITOR_OK) {
        fprintf(stderr, "host: async ack failed: %s\n", amonitor_strerror(rc));
    }

    free(job);
    host_thread_done(h);

    return NULL;
}


static void *
host_emit(void *arg)
{
    job_t  *job = arg;
    host_t *h = job->host;
    long    i;
    char   *data, *pad;
    int     rc;

    data = malloc((size_t) job->size + 64);
    pad = malloc((size_t) job->size + 1);

    if (data && pad) {
        memset(pad, 'x', (size_t) job->size);
        pad[job->size] = '\0';

        for (i = 0; i < job->count; i++) {
            snprintf(data, (size_t) job->size + 64,
                "{\"i\":%ld,\"pad\":\"%s\"}", i, pad);
            rc = amonitor_sdk_emit_event(h->ctx, "burst", data);
            if (rc == AMONITOR_ERR_FULL) {
                usleep(1000); /* the queue is bounded: wait, retry */
                i--;
                continue;
            }
            if (rc != AMONITOR_OK) {
                fprintf(
                    stderr, "host: emit failed: %s\n", amonitor_strerror(rc));
                break;
            }
            if (job->pause_us) {
                usleep((useconds_t) job->pause_us);
            }
        }
    }

    free(data);
    free(pad);
    free(job);
    host_thread_done(h);

    return NULL;
}


static int
host_action(amonitor_sdk_t *ctx, const amonitor_action_t *a, char *message,
    size_t size, void *data)
{
    host_t *h = data;
    job_t  *job;
    int     rc;

    if (a == NULL) {
        if (h->verbose) {
            fprintf(stderr, "host: handler teardown\n");
        }
        return AMONITOR_ACTION_OK;
    }

    h->actions++;

    if (h->verbose) {
        fprintf(
            stderr, "host: action %s %s %s\n", a->name, a->msg_id, a->params);
    }

    if (strcmp(a->name, "restart") == 0) {
        snprintf(message, size, "restarted");
        return AMONITOR_ACTION_OK;
    }

    if (strcmp(a->name, "fail") == 0) {
        snprintf(message, size, "failed on purpose");
        return AMONITOR_ACTION_FAIL;
    }

    if (strcmp(a->name, "echo") == 0) {
        snprintf(message, size, "%s|%s|%s|%s", a->params, a->trace_id,
            a->target_id, a->binary ? "binary" : "text");
        return AMONITOR_ACTION_OK;
    }

    if (strcmp(a->name, "bad_utf8") == 0) {
        snprintf(message, size, "bad \xff\xfe text");
        return AMONITOR_ACTION_OK;
    }

    if (strcmp(a->name, "ack_unknown") == 0) {
        rc = amonitor_sdk_ack(ctx, "no-such-msg-id", 1, "x");
        snprintf(message, size, "rc=%d", rc);
        return AMONITOR_ACTION_OK;
    }

    if (strcmp(a->name, "stop_inside") == 0) {
        rc = amonitor_sdk_stop(ctx);
        snprintf(message, size, "rc=%d", rc);
        return AMONITOR_ACTION_OK;
    }

    job = calloc(1, sizeof(job_t));
    if (job == NULL) {
        snprintf(message, size, "out of memory");
        return AMONITOR_ACTION_FAIL;
    }

    job->host = h;
    snprintf(job->msg_id, sizeof(job->msg_id), "%s", a->msg_id);
    job->ms = host_param(a->params, "ms", 200);
    job->count = host_param(a->params, "count", 10);
    job->size = host_param(a->params, "size", 0);
    job->pause_us = host_param(a->params, "pause_us", 0);
    job->success = (int) host_param(a->params, "success", 1);

    if (strcmp(a->name, "slow") == 0) {
        host_spawn(h, host_slow_ack, job, 1);
        return AMONITOR_ACTION_PENDING;
    }

    if (strcmp(a->name, "early") == 0) {
        /* the ack is sent from another thread before we return PENDING */
        job->ms = 0;
        host_spawn(h, host_slow_ack, job, 0);
        return AMONITOR_ACTION_PENDING;
    }

    if (strcmp(a->name, "early_ok") == 0) {
        /* acked elsewhere, then a result too: only one ack may go out */
        job->ms = 0;
        host_spawn(h, host_slow_ack, job, 0);
        snprintf(message, size, "second answer");
        return AMONITOR_ACTION_OK;
    }

    if (strcmp(a->name, "emit") == 0) {
        snprintf(message, size, "emitting %ld", job->count);
        host_spawn(h, host_emit, job, 1);
        return AMONITOR_ACTION_OK;
    }

    free(job);
    snprintf(message, size, "unsupported action: %s", a->name);

    return AMONITOR_ACTION_FAIL;
}


static void
host_metrics(amonitor_sdk_t *ctx, amonitor_metrics_t *m, void *data)
{
    host_t *h = data;

    if (m == NULL) {
        return;
    }

    amonitor_metrics_add(m, "name", "host");
    amonitor_metrics_add_int(m, "actions", h->actions);

    /* refused: the key exists already */
    if (amonitor_metrics_add(m, "name", "again") != AMONITOR_ERR_INVAL) {
        amonitor_metrics_add(m, "duplicate_key_accepted", "yes");
    }
}


static void
host_log(int level, const char *msg, void *data)
{
    host_t *h = data;

    if (msg && h->verbose) {
        fprintf(stderr, "host: log %d: %s\n", level, msg);
    }

    if (msg && h->log_stdout) {
        printf("LOG %d %s\n", level, msg);
        fflush(stdout);
    }
}


static void
host_stats(amonitor_sdk_t *ctx)
{
    amonitor_stats_t st;

    amonitor_sdk_stats(ctx, &st);

    printf("STATS {\"connections\":%llu,\"connections_total\":%llu,"
           "\"rejected\":%llu,\"actions\":%llu,\"acks\":%llu,"
           "\"acks_dropped\":%llu,\"heartbeats\":%llu,\"events\":%llu,"
           "\"dropped\":%llu,\"invalid\":%llu,\"protocol_errors\":%llu}\n",
        (unsigned long long) st.connections,
        (unsigned long long) st.connections_total,
        (unsigned long long) st.rejected, (unsigned long long) st.actions,
        (unsigned long long) st.acks, (unsigned long long) st.acks_dropped,
        (unsigned long long) st.heartbeats, (unsigned long long) st.events,
        (unsigned long long) st.dropped, (unsigned long long) st.invalid,
        (unsigned long long) st.protocol_errors);
    fflush(stdout);
}


/* One stdin line; returns 1 to stop. */
static int
host_command(host_t *h, char *line)
{
    char *name, *json;
    int   rc;

    line[strcspn(line, "\r\n")] = '\0';

    if (strcmp(line, "stop") == 0) {
        return 1;
    }

    if (strcmp(line, "stats") == 0) {
        host_stats(h->ctx);
        return 0;
    }

    if (strncmp(line, "emit ", 5) == 0) {
        name = line + 5;
        json = strchr(name, ' ');
        if (json) {
            *json++ = '\0';
        }
        rc = amonitor_sdk_emit_event(h->ctx, name, json);
        printf("EMIT %d\n", rc);
        fflush(stdout);
        return 0;
    }

    printf("UNKNOWN %s\n", line);
    fflush(stdout);

    return 0;
}


/* what the command line sets beyond the SDK's own configuration */
typedef struct {
    int       loop;
    int       metrics;
    long long idle_agent;
} host_opts_t;


/* returns 0 to go on, else the exit status */
static int
host_options(int argc, char **argv, amonitor_sdk_config_t *cfg, host_t *h,
    host_opts_t *o)
{
    int opt;

    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
        {"target-id", required_argument, NULL, 't'},
        {"token", required_argument, NULL, 'T'},
        {"interval", required_argument, NULL, 'i'},
        {"register-url", required_argument, NULL, 'r'},
        {"metadata", required_argument, NULL, 'M'},
        {"path", required_argument, NULL, 'P'},
        {"binary", no_argument, NULL, 'b'},
        {"max-message", required_argument, NULL, 'm'},
        {"max-send-queue", required_argument, NULL, 'q'},
        {"max-connections", required_argument, NULL, 'c'},
        {"max-pending", required_argument, NULL, 'n'},
        {"idle-agent", required_argument, NULL, 'I'},
        {"no-metrics", no_argument, NULL, 'N'},
        {"loop", no_argument, NULL, 'l'}, {"verbose", no_argument, NULL, 'v'},
        {"log-stdout", no_argument, NULL, 'L'}, {NULL, 0, NULL, 0}};

    cfg->port = 0;
    cfg->target_id = "test-target";
    cfg->heartbeat_ms = 60000;
    o->loop = 0;
    o->metrics = 1;
    o->idle_agent = -1;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p': cfg->port = (unsigned) atoi(optarg); break;
        case 't': cfg->target_id = optarg; break;
        case 'T': cfg->token = optarg; break;
        case 'i': cfg->heartbeat_ms = (unsigned) atoi(optarg); break;
        case 'r': cfg->register_url = optarg; break;
        case 'M': cfg->metadata_json = optarg; break;
        case 'P': cfg->path = optarg; break;
        case 'b': cfg->binary = 1; break;
        case 'm': cfg->max_message = (size_t) atol(optarg); break;
        case 'q': cfg->max_send_queue = (size_t) atol(optarg); break;
        case 'c': cfg->max_connections = (unsigned) atoi(optarg); break;
        case 'n': cfg->max_pending = (unsigned) atoi(optarg); break;
        case 'I': o->idle_agent = atoll(optarg); break;
        case 'N': o->metrics = 0; break;
        case 'l': o->loop = 1; break;
        case 'v': h->verbose = 1; break;
        case 'L': h->log_stdout = 1; break;
        default: return 2;
        }
    }

    return 0;
}


/* runs the commands read from stdin until it closes or one says stop */
static void
host_serve(host_t *h, int loop)
{
    int           n, rc;
    char         *nl;
    size_t        len;
    ssize_t       r;
    char          line[65536];
    struct pollfd pfd[2];

    len = 0;

    for (;;) {
        pfd[0].fd = STDIN_FILENO;
        pfd[0].events = POLLIN;
        pfd[1].fd = amonitor_sdk_fd(h->ctx);
        pfd[1].events = POLLIN;

        n = poll(pfd, loop ? 2 : 1, loop ? amonitor_sdk_timeout(h->ctx) : -1);
        if (n == -1 && errno != EINTR) {
            return;
        }

        if (loop && amonitor_sdk_step(h->ctx, 0) != AMONITOR_OK) {
            fprintf(stderr, "host: %s\n", h->ctx->errstr);
            return;
        }

        if (n <= 0 || !(pfd[0].revents & (POLLIN | POLLHUP))) {
            continue;
        }

        r = read(STDIN_FILENO, line + len, sizeof(line) - 1 - len);
        if (r <= 0) {
            return;
        }

        len += (size_t) r;
        line[len] = '\0';

        rc = 0;
        while (!rc && (nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            rc = host_command(h, line);
            len -= (size_t) (nl + 1 - line);
            memmove(line, nl + 1, len + 1);
        }

        if (rc) {
            return;
        }
    }
}


int
main(int argc, char **argv)
{
    int                   rc;
    host_t                h;
    host_opts_t           o;
    amonitor_sdk_config_t cfg;

    amonitor_sdk_config_init(&cfg);

    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.done, NULL);

    rc = host_options(argc, argv, &cfg, &h, &o);
    if (rc) {
        return rc;
    }

    h.ctx = amonitor_sdk_new(&cfg);
    if (h.ctx == NULL || h.ctx->err) {
        fprintf(stderr, "host: %s\n", h.ctx ? h.ctx->errstr : "no memory");
        amonitor_sdk_free(h.ctx);
        return 2;
    }

    if (o.idle_agent >= 0
        && amonitor_sdk_set_option(
               h.ctx, AMONITOR_OPT_IDLE_AGENT_MS, o.idle_agent)
            != AMONITOR_OK) {
        fprintf(stderr, "host: %s\n", h.ctx->errstr);
        amonitor_sdk_free(h.ctx);
        return 2;
    }

    amonitor_sdk_set_log(h.ctx, AMONITOR_LOG_DEBUG, host_log, &h);
    amonitor_sdk_on_action(h.ctx, NULL, host_action, &h);
    if (o.metrics) {
        amonitor_sdk_set_metrics(h.ctx, host_metrics, &h);
    }

    rc = o.loop ? amonitor_sdk_listen(h.ctx) : amonitor_sdk_start(h.ctx);
    if (rc != AMONITOR_OK) {
        fprintf(stderr, "host: %s\n", h.ctx->errstr);
        amonitor_sdk_free(h.ctx);
        return 1;
    }

    printf("PORT %d\n", amonitor_sdk_port(h.ctx));
    fflush(stdout);

    host_serve(&h, o.loop);

    /* helper threads use the context: let them finish first */
    pthread_mutex_lock(&h.lock);
    while (h.threads > 0) {
        pthread_cond_wait(&h.done, &h.lock);
    }
    pthread_mutex_unlock(&h.lock);

    rc = amonitor_sdk_stop(h.ctx);
    host_stats(h.ctx);
    amonitor_sdk_free(h.ctx);

    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.done);

    printf("BYE %d\n", rc);

    return 0;
}
