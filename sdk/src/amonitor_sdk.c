/*
 * Copyright (C) AMonitor authors
 *
 * SDK context: configuration, the listening socket, the epoll loop that
 * drives agent connections (on its own thread or the host's).  The top of
 * the SDK: sdk -> queue -> msg -> conn -> pending, util; connections call
 * back up only through the priv->on_* pointers set here.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, pipe2 */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "amonitor_sdk_int.h"
#include "amon_envelope.h"
#include "amon_ws_handshake.h"


#define AMONITOR_MAX_EVENTS 64


static int amonitor_config_check(
    amonitor_sdk_t *ctx, const amonitor_sdk_config_t *cfg);
static void  amonitor_accept(amonitor_sdk_priv_t *priv);
static void  amonitor_reap(amonitor_sdk_priv_t *priv);
static void  amonitor_drain(amonitor_sdk_priv_t *priv);
static void  amonitor_close_listener(amonitor_sdk_priv_t *priv);
static void *amonitor_thread(void *arg);
static void  amonitor_agent_open(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);


void
amonitor_sdk_config_init(amonitor_sdk_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));

    cfg->host = "127.0.0.1";
    cfg->port = 8765;
    cfg->target_id = "demo-target";
    cfg->heartbeat_ms = 10000;
    cfg->max_message = AMON_DEFAULT_MAX_MESSAGE;
    cfg->max_send_queue = 1024 * 1024;
    cfg->max_connections = 64;
    cfg->max_pending = 1024;
    cfg->max_queued_events = 4096;
}


/* a new agent connection: register (when configured), first heartbeat */
static void
amonitor_agent_open(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    if (priv->register_url) {
        amonitor_msg_register(priv, c);
    }

    if (priv->heartbeat_ms && c->state == AMONITOR_CONN_OPEN) {
        amonitor_msg_heartbeat(priv, c);
    }
}


amonitor_sdk_t *
amonitor_sdk_new(const amonitor_sdk_config_t *cfg)
{
    amonitor_sdk_t       *ctx;
    amonitor_sdk_priv_t  *priv;
    amonitor_sdk_config_t def;

    ctx = calloc(1, sizeof(amonitor_sdk_t));
    if (ctx == NULL) {
        return NULL;
    }

    priv = calloc(1, sizeof(amonitor_sdk_priv_t));
    if (priv == NULL) {
        free(ctx);
        return NULL;
    }

    ctx->priv = priv;
    priv->ctx = ctx;
    priv->listen_fd = -1;
    priv->epfd = -1;
    priv->wake_fd[0] = -1;
    priv->wake_fd[1] = -1;
    priv->bound_port = -1;
    priv->next_conn_id = 1;
    priv->log_level = AMONITOR_LOG_INFO;

    /* connections report upward through these, never by direct calls */
    priv->on_open = amonitor_agent_open;
    priv->on_message = amonitor_msg_dispatch;
    priv->on_heartbeat = amonitor_msg_heartbeat;

    if (pthread_mutex_init(&priv->lock, NULL) != 0) {
        free(priv);
        free(ctx);
        return NULL;
    }

    if (cfg == NULL) {
        amonitor_sdk_config_init(&def);
        cfg = &def;
    }

    if (amonitor_config_check(ctx, cfg) != AMONITOR_OK) {
        return ctx;
    }

    priv->host = amonitor_strdup(cfg->host);
    priv->path = cfg->path ? amonitor_strdup(cfg->path) : NULL;
    priv->target_id = amonitor_strdup(cfg->target_id);
    priv->token = cfg->token ? amonitor_strdup(cfg->token) : NULL;
    priv->register_url =
        cfg->register_url ? amonitor_strdup(cfg->register_url) : NULL;
    priv->metadata_json =
        amonitor_strdup(cfg->metadata_json ? cfg->metadata_json : "{}");

    if (priv->host == NULL || priv->target_id == NULL
        || priv->metadata_json == NULL || (cfg->path && priv->path == NULL)
        || (cfg->token && priv->token == NULL)
        || (cfg->register_url && priv->register_url == NULL)) {
        amonitor_set_error(ctx, AMONITOR_ERR_NOMEM, "out of memory");
        return ctx;
    }

    priv->port = cfg->port;
    priv->heartbeat_ms = cfg->heartbeat_ms;
    priv->binary = cfg->binary ? 1 : 0;
    priv->max_message = cfg->max_message;
    priv->max_send_queue = cfg->max_send_queue;
    priv->max_connections = cfg->max_connections;
    priv->max_pending = cfg->max_pending;
    priv->max_queued_events = cfg->max_queued_events;
    priv->configured = 1;

    return ctx;
}


static int
amonitor_config_check(amonitor_sdk_t *ctx, const amonitor_sdk_config_t *cfg)
{
    struct in_addr  a4;
    struct in6_addr a6;
    amon_ws_url_t   u;
    cJSON          *json;
    const char     *md;

    if (cfg->host == NULL
        || (inet_pton(AF_INET, cfg->host, &a4) != 1
            && inet_pton(AF_INET6, cfg->host, &a6) != 1)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "host must be a numeric IPv4 or IPv6 address");
    }

    if (cfg->port > 65535) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "invalid port %u", cfg->port);
    }

    if (cfg->target_id == NULL || cfg->target_id[0] == '\0'
        || !amonitor_valid_text(cfg->target_id, AMON_MAX_ID_LEN)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "target_id must be 1..%d bytes of UTF-8", AMON_MAX_ID_LEN);
    }

    if (cfg->path != NULL
        && (cfg->path[0] != '/' || !amonitor_valid_text(cfg->path, 1024))) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "path must start with \"/\"");
    }

    if (cfg->token != NULL
        && (cfg->token[0] == '\0' || !amonitor_valid_text(cfg->token, 1024)
            || strpbrk(cfg->token, " \t") != NULL)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "token must be 1..1024 printable characters without spaces");
    }

    if (cfg->register_url != NULL
        && (strlen(cfg->register_url) > AMON_MAX_URL_LEN
            || amon_ws_url_parse((const unsigned char *) cfg->register_url,
                   strlen(cfg->register_url), &u)
                != AMON_OK)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "register_url must be a ws:// or wss:// URL");
    }

    md = cfg->metadata_json ? cfg->metadata_json : "{}";
    json = cJSON_ParseWithLength(md, strlen(md));
    if (json == NULL || !cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "metadata_json must be a JSON object");
    }
    cJSON_Delete(json);

    if (cfg->max_message < 1024 || cfg->max_message > 256 * 1024 * 1024
        || cfg->max_send_queue < 4096 || cfg->max_connections == 0
        || cfg->max_pending == 0 || cfg->max_queued_events == 0) {
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "invalid limits (max_message >= 1024, max_send_queue >= 4096, "
            "counts > 0)");
    }

    return AMONITOR_OK;
}


void
amonitor_sdk_free(amonitor_sdk_t *ctx)
{
    amonitor_sdk_priv_t *priv;
    amonitor_handler_t  *h;
    amonitor_pending_t  *p;

    if (ctx == NULL) {
        return;
    }

    priv = ctx->priv;

    amonitor_sdk_stop(ctx);
    amonitor_free_jobs(priv);

    while (priv->pending) {
        p = priv->pending;
        priv->pending = p->next;
        amonitor_pending_free(p);
    }

    while (priv->handlers) {
        h = priv->handlers;
        priv->handlers = h->next;
        h->fn(ctx, NULL, NULL, 0, h->data);
        free(h->name);
        free(h);
    }

    if (priv->metrics_fn) {
        priv->metrics_fn(ctx, NULL, priv->metrics_data);
    }

    if (priv->log_fn) {
        priv->log_fn(AMONITOR_LOG_DEBUG, NULL, priv->log_data);
    }

    amon_buf_free(&priv->scratch, NULL);
    amon_buf_free(&priv->scratch2, NULL);
    pthread_mutex_destroy(&priv->lock);

    free(priv->host);
    free(priv->path);
    free(priv->target_id);
    free(priv->token);
    free(priv->register_url);
    free(priv->metadata_json);
    free(priv);
    free(ctx);
}


int
amonitor_sdk_on_action(
    amonitor_sdk_t *ctx, const char *name, amonitor_action_fn fn, void *data)
{
    amonitor_sdk_priv_t *priv;
    amonitor_handler_t  *h, **hp;

    if (ctx == NULL || !ctx->priv->configured) {
        return ctx ? ctx->err : AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (fn == NULL || (name && !amonitor_valid_text(name, AMON_MAX_ID_LEN))) {
        return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
            "a handler needs a function and a valid name");
    }

    h = calloc(1, sizeof(amonitor_handler_t));
    if (h == NULL) {
        return amonitor_set_error(ctx, AMONITOR_ERR_NOMEM, "out of memory");
    }

    if (name) {
        h->name = amonitor_strdup(name);
        if (h->name == NULL) {
            free(h);
            return amonitor_set_error(ctx, AMONITOR_ERR_NOMEM, "out of memory");
        }
    }

    h->fn = fn;
    h->data = data;

    for (hp = &priv->handlers; *hp; hp = &(*hp)->next) {
        if ((name == NULL && (*hp)->name == NULL)
            || (name && (*hp)->name && strcmp(name, (*hp)->name) == 0)) {
            /* replace: the old handler gets its teardown call */
            h->next = (*hp)->next;
            (*hp)->fn(ctx, NULL, NULL, 0, (*hp)->data);
            free((*hp)->name);
            free(*hp);
            *hp = h;
            return AMONITOR_OK;
        }
    }

    h->next = priv->handlers;
    priv->handlers = h;

    return AMONITOR_OK;
}


int
amonitor_sdk_set_metrics(
    amonitor_sdk_t *ctx, amonitor_metrics_fn fn, void *data)
{
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured) {
        return ctx ? ctx->err : AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (priv->metrics_fn
        && (priv->metrics_fn != fn || priv->metrics_data != data)) {
        priv->metrics_fn(ctx, NULL, priv->metrics_data);
    }

    priv->metrics_fn = fn;
    priv->metrics_data = data;

    return AMONITOR_OK;
}


int
amonitor_sdk_set_log(
    amonitor_sdk_t *ctx, int level, amonitor_log_fn fn, void *data)
{
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (priv->log_fn && (priv->log_fn != fn || priv->log_data != data)) {
        priv->log_fn(AMONITOR_LOG_DEBUG, NULL, priv->log_data);
    }

    priv->log_fn = fn;
    priv->log_data = data;
    priv->log_level = level;

    return AMONITOR_OK;
}


int
amonitor_sdk_listen(amonitor_sdk_t *ctx)
{
    int                     fd, one, rc;
    socklen_t               slen;
    struct sockaddr_storage ss;
    struct sockaddr_in     *sin;
    struct sockaddr_in6    *sin6;
    struct epoll_event      ev;
    amonitor_sdk_priv_t    *priv;

    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    if (!ctx->priv->configured) {
        return ctx->err; /* the configuration was rejected */
    }

    priv = ctx->priv;
    ctx->err = AMONITOR_OK;
    ctx->errstr[0] = '\0';

    if (priv->listen_fd != -1) {
        return AMONITOR_OK;
    }

    priv->leave_loop = 0;

    memset(&ss, 0, sizeof(ss));
    sin = (struct sockaddr_in *) &ss;
    sin6 = (struct sockaddr_in6 *) &ss;

    if (inet_pton(AF_INET, priv->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) priv->port);
        slen = sizeof(struct sockaddr_in);

    } else {
        inet_pton(AF_INET6, priv->host, &sin6->sin6_addr);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) priv->port);
        slen = sizeof(struct sockaddr_in6);
    }

    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "socket(): %s", strerror(errno));
    }

    one = 1;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (bind(fd, (struct sockaddr *) &ss, slen) == -1) {
        rc = errno;
        close(fd);
        return amonitor_set_error(ctx, AMONITOR_ERR_IO, "bind(%s:%u): %s",
            priv->host, priv->port, strerror(rc));
    }

    if (listen(fd, 128) == -1) {
        rc = errno;
        close(fd);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "listen(): %s", strerror(rc));
    }

    slen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *) &ss, &slen) == 0) {
        priv->bound_port =
            ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
    }

    priv->listen_fd = fd;

    priv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (priv->epfd == -1) {
        rc = errno;
        amonitor_close_listener(priv);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "epoll_create1(): %s", strerror(rc));
    }

    if (pipe2(priv->wake_fd, O_NONBLOCK | O_CLOEXEC) == -1) {
        rc = errno;
        priv->wake_fd[0] = -1;
        priv->wake_fd[1] = -1;
        amonitor_close_listener(priv);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "pipe2(): %s", strerror(rc));
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &priv->listen_fd;

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        rc = errno;
        amonitor_close_listener(priv);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "epoll_ctl(): %s", strerror(rc));
    }

    ev.data.ptr = &priv->wake_fd[0];

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, priv->wake_fd[0], &ev) == -1) {
        rc = errno;
        amonitor_close_listener(priv);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "epoll_ctl(): %s", strerror(rc));
    }

    /* jobs queued before listening deserve a wakeup */
    pthread_mutex_lock(&priv->lock);
    if (priv->jobs) {
        priv->wake_pending = 1;
        if (write(priv->wake_fd[1], "w", 1) == -1) {
            /* full pipe: a wakeup is already pending */
        }
    }
    pthread_mutex_unlock(&priv->lock);

    amonitor_log(priv, AMONITOR_LOG_INFO,
        "amonitor sdk \"%s\" listening on %s:%d", priv->target_id, priv->host,
        priv->bound_port);

    return AMONITOR_OK;
}


int
amonitor_sdk_port(amonitor_sdk_t *ctx)
{
    if (ctx == NULL || ctx->priv->listen_fd == -1) {
        return -1;
    }

    return ctx->priv->bound_port;
}


int
amonitor_sdk_start(amonitor_sdk_t *ctx)
{
    int                  rc;
    amonitor_sdk_priv_t *priv;

    rc = amonitor_sdk_listen(ctx);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    priv = ctx->priv;

    if (priv->thread_running) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_STATE, "the I/O thread is already running");
    }

    priv->leave_loop = 0;

    rc = pthread_create(&priv->thread, NULL, amonitor_thread, priv);
    if (rc != 0) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "pthread_create(): %s", strerror(rc));
    }

    priv->thread_running = 1;

    return AMONITOR_OK;
}


static void *
amonitor_thread(void *arg)
{
    amonitor_sdk_priv_t *priv = arg;

    while (!priv->leave_loop) {
        if (amonitor_sdk_step(priv->ctx, -1) != AMONITOR_OK) {
            break;
        }
    }

    amonitor_drain(priv);

    return NULL;
}


int
amonitor_sdk_stop(amonitor_sdk_t *ctx)
{
    amonitor_job_t      *job;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (priv->listen_fd == -1) {
        return AMONITOR_OK;
    }

    if (priv->in_callback
        || (priv->thread_running
            && pthread_equal(pthread_self(), priv->thread))) {
        /* no ctx->err here: it belongs to the thread that owns the SDK */
        return AMONITOR_ERR_STATE;
    }

    if (priv->thread_running) {
        job = calloc(1, sizeof(amonitor_job_t));

        pthread_mutex_lock(&priv->lock);
        if (job) {
            job->kind = AMONITOR_JOB_STOP;
            if (priv->jobs_tail) {
                priv->jobs_tail->next = job;

            } else {
                priv->jobs = job;
            }
            priv->jobs_tail = job;

        } else {
            /* no memory for a job: the flag is read after every step */
            priv->leave_loop = 1;
        }
        amonitor_wake(priv);
        pthread_mutex_unlock(&priv->lock);

        pthread_join(priv->thread, NULL);
        priv->thread_running = 0;

    } else {
        amonitor_drain(priv);
    }

    amonitor_close_listener(priv);

    amonitor_log(priv, AMONITOR_LOG_INFO, "amonitor sdk \"%s\" stopped",
        priv->target_id);

    return AMONITOR_OK;
}


/* Say goodbye to every connection, give peers a moment, close the rest. */
static void
amonitor_drain(amonitor_sdk_priv_t *priv)
{
    int64_t          end;
    amonitor_conn_t *c;

    amonitor_run_jobs(priv);

    for (c = priv->conns; c; c = c->next) {
        if (c->state == AMONITOR_CONN_OPEN) {
            amonitor_conn_close(
                priv, c, AMON_WS_CLOSE_GOING_AWAY, "going away");

        } else if (c->state == AMONITOR_CONN_HANDSHAKE) {
            amonitor_conn_abort(priv, c);
        }
    }

    amonitor_reap(priv);

    end = amon_posix_now_ms() + AMONITOR_CLOSING_MS;

    while (priv->conns && amon_posix_now_ms() < end) {
        priv->leave_loop = 1;
        if (amonitor_sdk_step(priv->ctx, 20) != AMONITOR_OK) {
            break;
        }
    }

    for (c = priv->conns; c; c = c->next) {
        amonitor_conn_abort(priv, c);
    }

    amonitor_reap(priv);
}


static void
amonitor_close_listener(amonitor_sdk_priv_t *priv)
{
    if (priv->listen_fd != -1) {
        close(priv->listen_fd);
        priv->listen_fd = -1;
    }

    if (priv->epfd != -1) {
        close(priv->epfd);
        priv->epfd = -1;
    }

    pthread_mutex_lock(&priv->lock);

    if (priv->wake_fd[0] != -1) {
        close(priv->wake_fd[0]);
        close(priv->wake_fd[1]);
        priv->wake_fd[0] = -1;
        priv->wake_fd[1] = -1;
    }

    priv->wake_pending = 0;

    pthread_mutex_unlock(&priv->lock);

    priv->bound_port = -1;
}


int
amonitor_sdk_fd(amonitor_sdk_t *ctx)
{
    if (ctx == NULL) {
        return -1;
    }

    return ctx->priv->epfd;
}


int
amonitor_sdk_timeout(amonitor_sdk_t *ctx)
{
    int64_t              now, t, best;
    amonitor_conn_t     *c;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL) {
        return -1;
    }

    priv = ctx->priv;
    best = -1;
    now = amon_posix_now_ms();

    for (c = priv->conns; c; c = c->next) {
        if (c->state == AMONITOR_CONN_DEAD) {
            return 0; /* reap now */
        }

        t = c->deadline;
        if (c->state == AMONITOR_CONN_OPEN && c->next_heartbeat
            && (t == 0 || c->next_heartbeat < t)) {
            t = c->next_heartbeat;
        }

        if (t == 0) {
            continue;
        }

        t = (t > now) ? t - now : 0;
        if (best < 0 || t < best) {
            best = t;
        }
    }

    return (int) best;
}


int
amonitor_sdk_step(amonitor_sdk_t *ctx, int timeout_ms)
{
    int                  n, i, t;
    char                 drain[64];
    int64_t              now;
    amonitor_conn_t     *c;
    amonitor_sdk_priv_t *priv;
    struct epoll_event   evs[AMONITOR_MAX_EVENTS];

    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (priv->epfd == -1) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "not listening: call amonitor_sdk_listen() first");
    }

    t = amonitor_sdk_timeout(ctx);
    if (t >= 0 && (timeout_ms < 0 || t < timeout_ms)) {
        timeout_ms = t;
    }

    n = epoll_wait(priv->epfd, evs, AMONITOR_MAX_EVENTS, timeout_ms);
    if (n == -1) {
        if (errno != EINTR) {
            return amonitor_set_error(
                ctx, AMONITOR_ERR_IO, "epoll_wait(): %s", strerror(errno));
        }
        n = 0;
    }

    for (i = 0; i < n; i++) {
        if (evs[i].data.ptr == &priv->listen_fd) {
            amonitor_accept(priv);
            continue;
        }

        if (evs[i].data.ptr == &priv->wake_fd[0]) {
            while (read(priv->wake_fd[0], drain, sizeof(drain)) > 0) {
                /* empty the pipe */
            }
            amonitor_run_jobs(priv);
            continue;
        }

        c = evs[i].data.ptr;

        if (c->state != AMONITOR_CONN_DEAD
            && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
            amonitor_conn_read(priv, c);
        }

        if (c->state != AMONITOR_CONN_DEAD && (evs[i].events & EPOLLOUT)) {
            amonitor_conn_write(priv, c);
        }
    }

    now = amon_posix_now_ms();

    for (c = priv->conns; c; c = c->next) {
        if (c->state != AMONITOR_CONN_DEAD) {
            amonitor_conn_timer(priv, c, now);
        }
    }

    amonitor_reap(priv);

    return AMONITOR_OK;
}


static void
amonitor_accept(amonitor_sdk_priv_t *priv)
{
    int              fd, one;
    amonitor_conn_t *c;

    for (;;) {
        fd = accept4(priv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                amonitor_log(
                    priv, AMONITOR_LOG_ERROR, "accept4(): %s", strerror(errno));
            }

            return;
        }

        if (priv->leave_loop || priv->nconns >= priv->max_connections) {
            amonitor_log(priv, AMONITOR_LOG_WARN,
                "connection refused: %u connections open (max %u)",
                priv->nconns, priv->max_connections);
            amonitor_stat_inc(priv, rejected);
            close(fd);
            continue;
        }

        one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c = amonitor_conn_new(priv, fd);
        if (c == NULL) {
            close(fd);
            continue;
        }
    }
}


static void
amonitor_reap(amonitor_sdk_priv_t *priv)
{
    amonitor_conn_t *c, **cp;

    cp = &priv->conns;

    while (*cp) {
        c = *cp;

        if (c->state == AMONITOR_CONN_DEAD) {
            *cp = c->next;
            amonitor_conn_free(priv, c);
            continue;
        }

        cp = &c->next;
    }
}


void
amonitor_sdk_stats(amonitor_sdk_t *ctx, amonitor_stats_t *st)
{
    amonitor_counters_t *s;

    memset(st, 0, sizeof(*st));

    if (ctx == NULL) {
        return;
    }

    s = &ctx->priv->stats;

#define amonitor_stat_read(f) st->f = __atomic_load_n(&s->f, __ATOMIC_RELAXED)

    amonitor_stat_read(connections);
    amonitor_stat_read(connections_total);
    amonitor_stat_read(rejected);
    amonitor_stat_read(actions);
    amonitor_stat_read(acks);
    amonitor_stat_read(acks_dropped);
    amonitor_stat_read(heartbeats);
    amonitor_stat_read(events);
    amonitor_stat_read(dropped);
    amonitor_stat_read(invalid);
    amonitor_stat_read(protocol_errors);

#undef amonitor_stat_read
}


int
amonitor_set_error(amonitor_sdk_t *ctx, int err, const char *fmt, ...)
{
    va_list ap;

    ctx->err = err;

    va_start(ap, fmt);
    vsnprintf(ctx->errstr, sizeof(ctx->errstr), fmt, ap);
    va_end(ap);

    amonitor_log(ctx->priv, AMONITOR_LOG_ERROR, "%s", ctx->errstr);

    return err;
}
