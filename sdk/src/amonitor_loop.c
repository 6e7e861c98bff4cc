/*
 * Copyright (C) AMonitor authors
 *
 * The SDK's epoll loop, run by its own I/O thread or by the host's loop
 * through amonitor_sdk_fd/_timeout/_step: connection timers, pending
 * action timeouts, the blocking and the non-blocking stop, and what a
 * forked child may do.  Accepting is amonitor_accept.c.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amonitor_sdk_int.h"


#define AMONITOR_MAX_EVENTS 64
#define AMONITOR_STOP_TEXT  "monitored program stopped before answering"


static int amonitor_loop_once(
    amonitor_sdk_priv_t *priv, int timeout_ms, char *err, size_t size);
static int  amonitor_loop_timeout(amonitor_sdk_priv_t *priv);
static void amonitor_reap(amonitor_sdk_priv_t *priv);
static void amonitor_goodbye(amonitor_sdk_priv_t *priv);


void *
amonitor_loop_thread(void *arg)
{
    char                 err[128];
    amonitor_sdk_priv_t *priv = arg;

    while (!amonitor_flag_get(&priv->leave_loop)) {
        if (amonitor_loop_once(priv, -1, err, sizeof(err)) != AMONITOR_OK) {
            amonitor_log(priv, AMONITOR_LOG_ERROR, "%s", err);
            break;
        }
    }

    amonitor_loop_drain(priv);

    return NULL;
}


/* Fail what is pending, close 1001 to open agents, drop handshakes. */
static void
amonitor_goodbye(amonitor_sdk_priv_t *priv)
{
    amonitor_conn_t *c;

    amonitor_run_jobs(priv);

    amonitor_queue_fail_all(priv, AMONITOR_STOP_TEXT);

    for (c = priv->conns; c; c = c->next) {
        if (c->state == AMONITOR_CONN_OPEN) {
            amonitor_conn_close(
                priv, c, AMON_WS_CLOSE_GOING_AWAY, "going away");

        } else if (c->state == AMONITOR_CONN_HANDSHAKE) {
            amonitor_conn_abort(priv, c);
        }
    }

    amonitor_reap(priv);
}


/* Say goodbye to every connection, give peers a moment, close the rest. */
void
amonitor_loop_drain(amonitor_sdk_priv_t *priv)
{
    char             err[128];
    int64_t          end;
    amonitor_conn_t *c;

    amonitor_goodbye(priv);

    end = amon_posix_now_ms() + AMONITOR_CLOSING_MS;

    while (priv->conns && amon_posix_now_ms() < end) {
        amonitor_flag_set(&priv->leave_loop, 1);
        if (amonitor_loop_once(priv, 20, err, sizeof(err)) != AMONITOR_OK) {
            break;
        }
    }

    for (c = priv->conns; c; c = c->next) {
        amonitor_conn_abort(priv, c);
    }

    amonitor_reap(priv);
    priv->stopping = 0;
}


/* The epoll descriptor stays: amonitor_sdk_fd() never changes. */
void
amonitor_loop_close_listener(amonitor_sdk_priv_t *priv)
{
    if (priv->listen_fd != -1) {
        if (priv->listening) {
            (void) epoll_ctl(priv->epfd, EPOLL_CTL_DEL, priv->listen_fd, NULL);
        }
        close(priv->listen_fd);
        priv->listen_fd = -1;
    }

    priv->listening = 0;
    priv->accept_resume = 0;

    pthread_mutex_lock(&priv->lock);

    if (priv->wake_fd[0] != -1) {
        (void) epoll_ctl(priv->epfd, EPOLL_CTL_DEL, priv->wake_fd[0], NULL);
        close(priv->wake_fd[0]);
        close(priv->wake_fd[1]);
        priv->wake_fd[0] = -1;
        priv->wake_fd[1] = -1;
    }

    priv->wake_pending = 0;

    pthread_mutex_unlock(&priv->lock);

    priv->bound_port = -1;
    amonitor_flag_set(&priv->pid, 0);
}


/*
 * amonitor_sdk_stop() or _free() in a process forked from the one that
 * listens: close this process's copies of the descriptors and nothing
 * more (no epoll_ctl on the shared instance, no close frame, shutdown or
 * TLS close_notify on the parent's agents, no wakeup), and forget the I/O
 * thread, which does not exist here.  Returns AMONITOR_ERR_STATE when the
 * copy's memory cannot be freed safely: an I/O thread ran at the fork
 * (the child has a snapshot of its state at any point of its work), or
 * another thread held the context's lock or answered an action.  The copy
 * then stays unusable ("abandoned") and its memory is left.
 */
int
amonitor_loop_forget(amonitor_sdk_priv_t *priv)
{
    int              locked;
    amonitor_conn_t *c;

    priv->log_level = -1; /* nothing to say about the parent's agents */

    if (amonitor_flag_get(&priv->thread_running)) {
        priv->abandoned = 1;
    }

    for (c = priv->conns; c; c = c->next) {
        if (c->fd != -1) {
            close(c->fd);
            c->fd = -1;
        }
    }

    while (priv->conns && !priv->abandoned) {
        c = priv->conns;
        priv->conns = c->next;
        amonitor_tls_free(c); /* memory only */
        amonitor_conn_free(priv, c);
    }

    priv->conns = NULL;
    priv->nconns = 0;

    if (priv->listen_fd != -1) {
        close(priv->listen_fd);
        priv->listen_fd = -1;
    }

    priv->listening = 0;
    priv->accept_resume = 0;
    priv->stopping = 0;
    priv->cb_depth = 0;
    priv->bound_port = -1;

    locked = (pthread_mutex_trylock(&priv->lock) == 0);

    if (priv->wake_fd[0] != -1) {
        close(priv->wake_fd[0]);
        close(priv->wake_fd[1]);
        priv->wake_fd[0] = -1;
        priv->wake_fd[1] = -1;
    }

    priv->wake_pending = 0;

    if (!locked || priv->answering) {
        priv->abandoned = 1;
    }

    if (locked) {
        pthread_mutex_unlock(&priv->lock);
    }

    amonitor_flag_set(&priv->thread_running, 0);
    amonitor_flag_set(&priv->leave_loop, 0);
    amonitor_flag_set(&priv->pid, 0);

    if (priv->abandoned) {
        return AMONITOR_ERR_STATE;
    }

    amonitor_free_jobs(priv); /* the parent's events are not ours */

    return AMONITOR_OK;
}


/*
 * Listening in a process other than the one that made the epoll instance
 * (the context was made before a fork): the instance is shared with that
 * process, so this one gets its own under the same number.
 */
int
amonitor_loop_own_epoll(amonitor_sdk_t *ctx)
{
    int                  fd, rc;
    amonitor_sdk_priv_t *priv;

    priv = ctx->priv;

    if (priv->epoll_pid == getpid()) {
        return AMONITOR_OK;
    }

    fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd == -1 || dup3(fd, priv->epfd, O_CLOEXEC) == -1) {
        rc = errno;
        if (fd != -1) {
            close(fd);
        }
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "epoll_create1(): %s", strerror(rc));
    }

    close(fd);
    priv->epoll_pid = getpid();

    return AMONITOR_OK;
}


/*
 * Is the caller the thread that runs the loop, inside a callback, or in
 * the log sink (which any thread may run)?
 */
int
amonitor_on_loop_thread(amonitor_sdk_priv_t *priv)
{
    if (amonitor_in_log(priv)) {
        return 1;
    }

    if (amonitor_flag_get(&priv->thread_running)) {
        return pthread_equal(pthread_self(), priv->thread);
    }

    return priv->cb_depth > 0;
}

/* the I/O thread of amonitor_sdk_start(), once the context listens */
int
amonitor_loop_thread_start(amonitor_sdk_t *ctx)
{
    int                  rc;
    amonitor_sdk_priv_t *priv;

    priv = ctx->priv;

    if (amonitor_flag_get(&priv->thread_running)) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_STATE, "the I/O thread is already running");
    }

    if (priv->cb_depth || amonitor_in_log(priv)) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_STATE, "not from a callback");
    }

    amonitor_flag_set(&priv->leave_loop, 0);

    /* set before the thread exists: it reads "thread" and the flag */
    amonitor_flag_set(&priv->thread_running, 1);

    rc = pthread_create(&priv->thread, NULL, amonitor_loop_thread, priv);
    if (rc != 0) {
        amonitor_flag_set(&priv->thread_running, 0);
        return amonitor_set_error(
            ctx, AMONITOR_ERR_IO, "pthread_create(): %s", strerror(rc));
    }

    return AMONITOR_OK;
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

    if (amonitor_foreign(priv)) {
        /* a forked child: the parent goes on serving untouched */
        (void) amonitor_loop_forget(priv);
        return AMONITOR_OK;
    }

    if (priv->listen_fd == -1 && priv->conns == NULL
        && !amonitor_flag_get(&priv->thread_running)) {
        return AMONITOR_OK;
    }

    if (amonitor_on_loop_thread(priv)) {
        /* no ctx->err here: it belongs to the thread that owns the SDK */
        return AMONITOR_ERR_STATE;
    }

    if (amonitor_flag_get(&priv->thread_running)) {
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
            amonitor_flag_set(&priv->leave_loop, 1);
        }
        amonitor_wake(priv);
        pthread_mutex_unlock(&priv->lock);

        /* waits for a handler that is running to return */
        pthread_join(priv->thread, NULL);
        amonitor_flag_set(&priv->thread_running, 0);

    } else {
        amonitor_loop_drain(priv);
    }

    amonitor_loop_close_listener(priv);

    amonitor_log(priv, AMONITOR_LOG_INFO, "amonitor sdk \"%s\" stopped",
        priv->target_id);

    return AMONITOR_OK;
}


int
amonitor_sdk_stop_begin(amonitor_sdk_t *ctx)
{
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL || !ctx->priv->configured) {
        return AMONITOR_ERR_INVAL;
    }

    priv = ctx->priv;

    if (amonitor_foreign(priv)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "the context listens in another process (this one was forked "
            "from it): amonitor_sdk_stop() releases this copy");
    }

    if (amonitor_flag_get(&priv->thread_running) || priv->cb_depth
        || amonitor_in_log(priv)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "amonitor_sdk_stop_begin() is for a host loop, not from a "
            "callback");
    }

    if (priv->listen_fd == -1 || priv->stopping) {
        return AMONITOR_OK;
    }

    priv->stopping = 1;
    priv->stop_deadline = amon_posix_now_ms() + AMONITOR_CLOSING_MS;

    /* no new agents; the wake pipe stays for acks until the end */
    if (priv->listening) {
        (void) epoll_ctl(priv->epfd, EPOLL_CTL_DEL, priv->listen_fd, NULL);
        priv->listening = 0;
    }

    close(priv->listen_fd);
    priv->listen_fd = -1;

    amonitor_goodbye(priv);

    return AMONITOR_OK;
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
    if (ctx == NULL || amonitor_flag_get(&ctx->priv->thread_running)) {
        return 0;
    }

    return amonitor_loop_timeout(ctx->priv);
}


static int
amonitor_loop_timeout(amonitor_sdk_priv_t *priv)
{
    int64_t          now, t, best;
    amonitor_conn_t *c;

    now = amon_posix_now_ms();
    best = -1;

#define amonitor_timer(deadline) \
    if ((deadline) != 0) { \
        t = (deadline) > now ? (deadline) -now : 0; \
        if (best < 0 || t < best) { \
            best = t; \
        } \
    }

    for (c = priv->conns; c; c = c->next) {
        if (c->state == AMONITOR_CONN_DEAD) {
            return 0; /* reap now */
        }

        amonitor_timer(c->deadline);

        if (c->state == AMONITOR_CONN_OPEN) {
            amonitor_timer(c->next_heartbeat);
        }
    }

    amonitor_timer(priv->accept_resume);
    amonitor_timer(amonitor_pending_next_deadline(priv));

    if (priv->stopping) {
        amonitor_timer(priv->stop_deadline);
    }

#undef amonitor_timer

    return best > 0x7fffffff ? 0x7fffffff : (int) best;
}


int
amonitor_sdk_step(amonitor_sdk_t *ctx, int timeout_ms)
{
    int                  rc;
    amonitor_conn_t     *c;
    amonitor_sdk_priv_t *priv;

    if (ctx == NULL) {
        return AMONITOR_ERR_INVAL;
    }

    if (!ctx->priv->configured) {
        return ctx->err;
    }

    priv = ctx->priv;

    if (amonitor_foreign(priv)) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "the context listens in another process (this one was forked "
            "from it): amonitor_sdk_step() is refused");
    }

    if (amonitor_flag_get(&priv->thread_running)) {
        /* two loops over the same sockets would corrupt the streams */
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "the I/O thread runs the SDK: amonitor_sdk_step() is refused");
    }

    if (priv->cb_depth || amonitor_in_log(priv)) {
        return amonitor_set_error(
            ctx, AMONITOR_ERR_STATE, "amonitor_sdk_step() from a callback");
    }

    if (priv->listen_fd == -1 && !priv->stopping) {
        return amonitor_set_error(ctx, AMONITOR_ERR_STATE,
            "not listening: call amonitor_sdk_listen() first");
    }

    rc = amonitor_loop_once(priv, timeout_ms, ctx->errstr, sizeof(ctx->errstr));
    if (rc != AMONITOR_OK) {
        ctx->err = rc;
        amonitor_log(priv, AMONITOR_LOG_ERROR, "%s", ctx->errstr);
        return rc;
    }

    if (priv->stopping
        && (priv->conns == NULL
            || amon_posix_now_ms() >= priv->stop_deadline)) {
        for (c = priv->conns; c; c = c->next) {
            amonitor_conn_abort(priv, c);
        }

        amonitor_reap(priv);
        amonitor_run_jobs(priv);
        amonitor_loop_close_listener(priv);
        priv->stopping = 0;

        amonitor_log(priv, AMONITOR_LOG_INFO, "amonitor sdk \"%s\" stopped",
            priv->target_id);

        return AMONITOR_STOPPED;
    }

    return AMONITOR_OK;
}


/* One round of the loop; never touches ctx->err (any thread may run it). */
static int
amonitor_loop_once(
    amonitor_sdk_priv_t *priv, int timeout_ms, char *err, size_t size)
{
    int                n, i, t;
    char               drain[64];
    int64_t            now;
    amonitor_conn_t   *c;
    struct epoll_event evs[AMONITOR_MAX_EVENTS];

    t = amonitor_loop_timeout(priv);
    if (t >= 0 && (timeout_ms < 0 || t < timeout_ms)) {
        timeout_ms = t;
    }

    n = epoll_wait(priv->epfd, evs, AMONITOR_MAX_EVENTS, timeout_ms);
    if (n == -1) {
        if (errno != EINTR) {
            snprintf(err, size, "epoll_wait(): %s", strerror(errno));
            return AMONITOR_ERR_IO;
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

    amonitor_queue_expire(priv, now);
    amonitor_accept_resume(priv, now);
    amonitor_reap(priv);

    return AMONITOR_OK;
}


/* Free closed connections; tell the program about agents that left. */
static void
amonitor_reap(amonitor_sdk_priv_t *priv)
{
    amonitor_conn_t *c, **cp;

    cp = &priv->conns;

    while (*cp) {
        c = *cp;

        if (c->state == AMONITOR_CONN_DEAD) {
            *cp = c->next;

            if (c->announced && priv->conn_fn) {
                priv->cb_depth++;
                priv->conn_fn(priv->ctx, c->id, c->peer, 0, priv->conn_data);
                priv->cb_depth--;
            }

            amonitor_conn_free(priv, c);
            continue;
        }

        cp = &c->next;
    }
}
