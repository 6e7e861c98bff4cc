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
#include <stdarg.h>
#include <stddef.h>
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


static int amonitor_sdk_socket(amonitor_sdk_t *ctx);
static int amonitor_config_check(
    amonitor_sdk_t *ctx, const amonitor_sdk_config_t *cfg);
static void amonitor_agent_open(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
static void amonitor_handler_release(
    amonitor_sdk_priv_t *priv, amonitor_handler_t *h);
static int amonitor_callbacks_settable(amonitor_sdk_priv_t *priv);
static int amonitor_add_handler(amonitor_sdk_t *ctx, const char *name,
    amonitor_action_fn fn, amonitor_handler_fn fn2,
    amonitor_teardown_fn teardown, void *data);


void
amonitor_sdk_config_init(amonitor_sdk_config_t *cfg)
{
    if (cfg == NULL) {
        return;
    }

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

    if (priv->conn_fn && c->state == AMONITOR_CONN_OPEN) {
        c->announced = 1;
        priv->cb_depth++;
        priv->conn_fn(priv->ctx, c->id, c->peer, 1, priv->conn_data);
        priv->cb_depth--;
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

    priv->refs = 1;
    priv->pending_timeout = AMONITOR_PENDING_TIMEOUT;
    priv->accept_backoff = AMONITOR_ACCEPT_BACKOFF;
    priv->idle_agent = AMONITOR_IDLE_AGENT_MS;

    if (pthread_mutex_init(&priv->lock, NULL) != 0) {
        free(priv);
        free(ctx);
        return NULL;
    }

    if (pthread_cond_init(&priv->idle, NULL) != 0) {
        pthread_mutex_destroy(&priv->lock);
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

    /* one descriptor for the context's whole life (amonitor_sdk_fd) */
    priv->epfd = epoll_create1(EPOLL_CLOEXEC);
    priv->epoll_pid = getpid();
    if (priv->epfd == -1) {
        amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "epoll_create1(): %s", strerror(errno));
        return ctx;
    }

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

    if (ctx == NULL) {
        return;
    }

    priv = ctx->priv;

    if (amonitor_foreign(priv)) {
        /* a forked child: release this process's copy only */
        if (amonitor_loop_forget(priv) != AMONITOR_OK) {
            close(priv->epfd); /* the rest cannot be freed safely here */
            return;
        }

    } else if (amonitor_on_loop_thread(priv)) {
        amonitor_log(priv, AMONITOR_LOG_ERROR,
            "amonitor_sdk_free() called from a callback: ignored");
        return;
    }

    /* joins the I/O thread (after a running handler returned) */
    amonitor_sdk_stop(ctx);

    /* nothing may stay pending: the agents were told, the table empties */
    amonitor_queue_fail_all(priv, "monitored program stopped");

    /*
     * From here handles get AMONITOR_ERR_STATE; an ack under way on
     * another thread (it may log) ends before any teardown runs.  Handles
     * the program still holds keep the lock alive.
     */
    amonitor_pending_close(priv);

    while (priv->handlers) {
        h = priv->handlers;
        priv->handlers = h->next;
        amonitor_handler_release(priv, h);
    }

    if (priv->metrics_fn) {
        priv->metrics_fn(ctx, NULL, priv->metrics_data);
    }

    if (priv->conn_teardown) {
        priv->conn_teardown(priv->conn_data);
    }

    if (priv->log_fn) {
        priv->log_fn(AMONITOR_LOG_DEBUG, NULL, priv->log_data);
    }

    amonitor_free_jobs(priv);
    amon_buf_free(&priv->scratch, NULL);
    amon_buf_free(&priv->scratch2, NULL);
    amonitor_tls_free_ctx(priv);

    if (priv->epfd != -1) {
        close(priv->epfd);
    }

    free(priv->host);
    free(priv->path);
    free(priv->target_id);
    free(priv->token);
    free(priv->register_url);
    free(priv->metadata_json);

    amonitor_pending_unref_priv(priv);
    free(ctx);
}


/*
 * Free a handler that left the list; its teardown runs unless another
 * registration still uses the same (fn, data) or (teardown, data).
 */
static void
amonitor_handler_release(amonitor_sdk_priv_t *priv, amonitor_handler_t *h)
{
    amonitor_handler_t *o;

    for (o = priv->handlers; o; o = o->next) {
        if (o->data == h->data
            && ((h->fn && o->fn == h->fn)
                || (h->teardown && o->teardown == h->teardown))) {
            break;
        }
    }

    if (o == NULL) {
        if (h->fn) {
            h->fn(priv->ctx, NULL, NULL, 0, h->data);

        } else if (h->teardown) {
            h->teardown(h->data);
        }
    }

    free(h->name);
    free(h);
}


int
amonitor_sdk_on_action(
    amonitor_sdk_t *ctx, const char *name, amonitor_action_fn fn, void *data)
{
    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    return amonitor_add_handler(ctx, name, fn, NULL, NULL, data);
}


int
amonitor_sdk_handle(amonitor_sdk_t *ctx, const char *name,
    amonitor_handler_fn fn, amonitor_teardown_fn teardown, void *data)
{
    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    if (fn == NULL) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "a handler needs a function");
    }

    return amonitor_add_handler(ctx, name, NULL, fn, teardown, data);
}


static int
amonitor_add_handler(amonitor_sdk_t *ctx, const char *name,
    amonitor_action_fn fn, amonitor_handler_fn fn2,
    amonitor_teardown_fn teardown, void *data)
{
    amonitor_sdk_priv_t *priv;
    amonitor_handler_t  *h, *old, **hp;

    if (!ctx->priv->configured) {
        return ctx->err;
    }

    priv = ctx->priv;

    if (amonitor_flag_get(&priv->thread_running)
        && !pthread_equal(pthread_self(), priv->thread)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "handlers are registered before start or on the I/O thread");
    }

    if ((fn == NULL && fn2 == NULL)
        || (name && !amonitor_valid_text(name, AMON_MAX_ID_LEN))) {
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
    h->fn2 = fn2;
    h->teardown = teardown;
    h->data = data;

    for (hp = &priv->handlers; *hp; hp = &(*hp)->next) {
        if ((name == NULL && (*hp)->name == NULL)
            || (name && (*hp)->name && strcmp(name, (*hp)->name) == 0)) {
            /* replace: the old one is torn down unless "h" shares it */
            old = *hp;
            h->next = old->next;
            *hp = h;
            amonitor_handler_release(priv, old);
            return AMONITOR_OK;
        }
    }

    h->next = priv->handlers;
    priv->handlers = h;

    return AMONITOR_OK;
}


int
amonitor_sdk_on_connection(amonitor_sdk_t *ctx, amonitor_connection_fn fn,
    amonitor_teardown_fn teardown, void *data)
{
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured) {
        return ctx ? ctx->err : AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (amonitor_flag_get(&priv->thread_running)
        && !pthread_equal(pthread_self(), priv->thread)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "callbacks are set before start or on the I/O thread");
    }

    if (priv->conn_teardown
        && (priv->conn_teardown != teardown || priv->conn_data != data)) {
        priv->conn_teardown(priv->conn_data);
    }

    priv->conn_fn = fn;
    priv->conn_teardown = teardown;
    priv->conn_data = data;

    return AMONITOR_OK;
}


int
amonitor_sdk_set_option(amonitor_sdk_t *ctx, int option, long long value)
{
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured) {
        return ctx ? ctx->err : AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (priv->listen_fd != -1 || amonitor_flag_get(&priv->thread_running)) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_STATE, "options are set before listening");
    }

    switch (option) {

    case AMONITOR_OPT_PENDING_TIMEOUT_MS:
        if (value < 0 || value > 86400000LL * 7) {
            break;
        }
        priv->pending_timeout = value;
        return AMONITOR_OK;

    case AMONITOR_OPT_ACCEPT_BACKOFF_MS:
        if (value < 1 || value > 60000) {
            break;
        }
        priv->accept_backoff = value;
        return AMONITOR_OK;

    case AMONITOR_OPT_IDLE_AGENT_MS:
        if (value < 0 || value > 86400000LL) {
            break;
        }
        priv->idle_agent = value;
        return AMONITOR_OK;

    default:
        return amonitor_set_error(
            ctx, AMONITOR_ERR_INVAL, "unknown option %d", option);
    }

    return amonitor_set_error(ctx, AMONITOR_ERR_INVAL,
        "value %lld out of range for option %d", value, option);
}


/*
 * Before start, or on the I/O thread: another thread would race the
 * loop, which calls the old callback, maybe while its teardown runs.
 */
static int
amonitor_callbacks_settable(amonitor_sdk_priv_t *priv)
{
    return !amonitor_flag_get(&priv->thread_running)
        || pthread_equal(pthread_self(), priv->thread);
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

    if (!amonitor_callbacks_settable(priv)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "callbacks are set before start or on the I/O thread");
    }

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

    if (!amonitor_callbacks_settable(priv)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "callbacks are set before start or on the I/O thread");
    }

    if (priv->log_fn && (priv->log_fn != fn || priv->log_data != data)) {
        priv->log_fn(AMONITOR_LOG_DEBUG, NULL, priv->log_data);
    }

    priv->log_fn = fn;
    priv->log_data = data;
    priv->log_level = level;

    return AMONITOR_OK;
}


/* the listening socket on host:port (the bound port noted), or -1 */
static int
amonitor_sdk_socket(amonitor_sdk_t *ctx)
{
    int                     fd, one, rc;
    socklen_t               slen;
    struct sockaddr_storage ss;
    struct sockaddr_in     *sin;
    struct sockaddr_in6    *sin6;
    amonitor_sdk_priv_t    *priv;

    priv = ctx->priv;

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
        (void) amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "socket(): %s", strerror(errno));
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (bind(fd, (struct sockaddr *) &ss, slen) == -1) {
        rc = errno;
        close(fd);
        (void) amonitor_set_error(ctx, AMONITOR_ERR_IO, "bind(%s:%u): %s",
            priv->host, priv->port, strerror(rc));
        return -1;
    }

    if (listen(fd, 128) == -1) {
        rc = errno;
        close(fd);
        (void) amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "listen(): %s", strerror(rc));
        return -1;
    }

    slen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *) &ss, &slen) == 0) {
        priv->bound_port =
            ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
    }

    return fd;
}


int
amonitor_sdk_listen(amonitor_sdk_t *ctx)
{
    int                  fd, rc;
    struct epoll_event   ev;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    if (!ctx->priv->configured) {
        return ctx->err; /* the configuration was rejected */
    }

    priv = ctx->priv;
    ctx->err = AMONITOR_OK;
    ctx->errstr[0] = '\0';

    if (amonitor_foreign(priv)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "the context listens in another process (this one was forked "
            "from it): free it here and make a new one");
    }

    if (priv->listen_fd != -1) {
        return AMONITOR_OK;
    }

    if (priv->stopping || priv->conns) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "a stop is still under way: call amonitor_sdk_step()");
    }

    if (amonitor_loop_own_epoll(ctx) != AMONITOR_OK) {
        return ctx->err;
    }

    amonitor_flag_set(&priv->leave_loop, 0);
    priv->accept_resume = 0;

    fd = amonitor_sdk_socket(ctx);
    if (fd == -1) {
        return ctx->err;
    }

    priv->listen_fd = fd;

    if (pipe2(priv->wake_fd, O_NONBLOCK | O_CLOEXEC) == -1) {
        rc = errno;
        priv->wake_fd[0] = -1;
        priv->wake_fd[1] = -1;
        amonitor_loop_close_listener(priv);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "pipe2(): %s", strerror(rc));
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &priv->listen_fd;

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        rc = errno;
        amonitor_loop_close_listener(priv);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "epoll_ctl(): %s", strerror(rc));
    }

    priv->listening = 1;
    ev.data.ptr = &priv->wake_fd[0];

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, priv->wake_fd[0], &ev) == -1) {
        rc = errno;
        amonitor_loop_close_listener(priv);
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

    amonitor_flag_set(&priv->pid, getpid());

    amonitor_log(priv, AMONITOR_LOG_INFO,
        "amonitor sdk \"%s\" listening on %s:%d", priv->target_id, priv->host,
        priv->bound_port);

    return AMONITOR_OK;
}


int
amonitor_sdk_start(amonitor_sdk_t *ctx)
{
    int rc;

    rc = amonitor_sdk_listen(ctx);
    if (rc != AMONITOR_OK) {
        return rc;
    }

    return amonitor_loop_thread_start(ctx);
}


int
amonitor_sdk_port(amonitor_sdk_t *ctx)
{
    if (ctx == NULL || ctx->priv->listen_fd == -1) {
        return -1;
    }

    return ctx->priv->bound_port;
}
