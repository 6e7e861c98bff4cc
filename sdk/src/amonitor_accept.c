/*
 * Copyright (C) AMonitor authors
 *
 * Accepting agents' connections: places (max_connections) and who yields
 * one when all are taken, and a back-off when out of descriptors.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amonitor_sdk_int.h"


static int amonitor_accept_room(
    amonitor_sdk_priv_t *priv, const struct sockaddr_storage *ss);
static int amonitor_accept_same(
    const amonitor_conn_t *c, const struct sockaddr_storage *ss);
static void amonitor_accept_refused(amonitor_sdk_priv_t *priv);
static int  amonitor_accept_idle(amonitor_sdk_priv_t *priv);
static void amonitor_accept_failed(amonitor_sdk_priv_t *priv, int err);


void
amonitor_accept(amonitor_sdk_priv_t *priv)
{
    int                     fd, one;
    socklen_t               slen;
    amonitor_conn_t        *c;
    struct sockaddr_storage ss;

    while (priv->listening) {
        slen = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        fd = accept4(priv->listen_fd, (struct sockaddr *) &ss, &slen,
            SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                amonitor_accept_failed(priv, errno);
            }

            return;
        }

        if (amonitor_flag_get(&priv->leave_loop)) {
            amonitor_log(priv, AMONITOR_LOG_WARN,
                "connection refused: the SDK is stopping");
            amonitor_stat_inc(priv, rejected);
            close(fd);
            continue;
        }

        if (priv->nconns >= priv->max_connections
            && !amonitor_accept_room(priv, &ss)) {
            amonitor_accept_refused(priv);
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


/*
 * All max_connections are taken: close a connection that is not an
 * agent's (its handshake not done, or refused, e.g. without the token) to
 * make room.  Sockets that never finish a handshake would otherwise hold
 * every place for AMONITOR_HANDSHAKE_MS each, again and again, and shut
 * the agent out.  The oldest such connection from the new one's address
 * goes first, so that a flood from one address replaces its own sockets
 * and not the agent's handshake in progress from another address; else
 * the oldest of all.  Failing that, the agent's connection that has been
 * silent longest, once silent for idle_agent: without a token anyone can
 * finish a handshake and then say nothing, while the agent pings (every
 * 20 s by default).  Returns 1 when a place was freed.
 */
static int
amonitor_accept_room(
    amonitor_sdk_priv_t *priv, const struct sockaddr_storage *ss)
{
    amonitor_conn_t *c, *oldest, *own;

    oldest = NULL;
    own = NULL;

    for (c = priv->conns; c; c = c->next) {
        if (c->state != AMONITOR_CONN_HANDSHAKE
            && !(c->state == AMONITOR_CONN_CLOSING && !c->counted)) {
            continue;
        }

        if (oldest == NULL || c->id < oldest->id) {
            oldest = c;
        }

        if (amonitor_accept_same(c, ss) && (own == NULL || c->id < own->id)) {
            own = c;
        }
    }

    if (own) {
        oldest = own;
    }

    if (oldest == NULL) {
        return amonitor_accept_idle(priv);
    }

    if (amonitor_log_due(&priv->room_logged, &priv->room_suppressed)) {
        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu from %s closed: it is not an agent's yet and "
            "all %u places are taken (%u more since the last such line)",
            (unsigned long long) oldest->id, oldest->peer,
            priv->max_connections, priv->room_suppressed);
        priv->room_suppressed = 0;
    }

    amonitor_stat_inc(priv, rejected);
    amonitor_conn_abort(priv, oldest);

    return 1;
}


/* 1: the connection is from the address in "ss" */
static int
amonitor_accept_same(
    const amonitor_conn_t *c, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        return c->addr_len == 4
            && memcmp(c->addr, &((const struct sockaddr_in *) ss)->sin_addr, 4)
            == 0;
    }

    if (ss->ss_family == AF_INET6) {
        return c->addr_len == 16
            && memcmp(
                   c->addr, &((const struct sockaddr_in6 *) ss)->sin6_addr, 16)
            == 0;
    }

    return 0;
}


/* no place for a new connection: a warn line every AMONITOR_LOG_INTERVAL */
static void
amonitor_accept_refused(amonitor_sdk_priv_t *priv)
{
    amonitor_stat_inc(priv, rejected);

    if (amonitor_log_due(&priv->refused_logged, &priv->refused_suppressed)) {
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "connection refused: %u connections open (max %u; %u more "
            "refused since the last such line)",
            priv->nconns, priv->max_connections, priv->refused_suppressed);
        priv->refused_suppressed = 0;
    }
}


/* the agent's connection silent longest, if it was silent for idle_agent */
static int
amonitor_accept_idle(amonitor_sdk_priv_t *priv)
{
    int64_t          now;
    amonitor_conn_t *c, *idle;

    if (priv->idle_agent == 0) {
        return 0;
    }

    now = amon_posix_now_ms();
    idle = NULL;

    for (c = priv->conns; c; c = c->next) {
        if (c->state == AMONITOR_CONN_OPEN
            && now - c->last_in >= priv->idle_agent
            && (idle == NULL || c->last_in < idle->last_in)) {
            idle = c;
        }
    }

    if (idle == NULL) {
        return 0;
    }

    amonitor_log(priv, AMONITOR_LOG_WARN,
        "connection %llu from %s closed: it sent nothing for %lld ms and "
        "all %u places are taken",
        (unsigned long long) idle->id, idle->peer,
        (long long) (now - idle->last_in), priv->max_connections);
    amonitor_stat_inc(priv, rejected);
    amonitor_conn_abort(priv, idle);

    return 1;
}


/*
 * accept() failed (EMFILE, ENFILE, ENOBUFS, ...): the connection stays in
 * the backlog and the listener would be readable again at once, so stop
 * watching it for a while; log once per AMONITOR_LOG_INTERVAL.
 */
static void
amonitor_accept_failed(amonitor_sdk_priv_t *priv, int err)
{
    int64_t now;

    amonitor_stat_inc(priv, accept_errors);

    now = amon_posix_now_ms();

    if (priv->accept_logged == 0
        || now - priv->accept_logged >= AMONITOR_LOG_INTERVAL) {
        amonitor_log(priv, AMONITOR_LOG_ERROR,
            "accept4(): %s; accepting paused for %lld ms (%u similar "
            "errors not logged)",
            strerror(err), (long long) priv->accept_backoff,
            priv->accept_suppressed);
        priv->accept_logged = now;
        priv->accept_suppressed = 0;

    } else {
        priv->accept_suppressed++;
    }

    if (priv->listening) {
        (void) epoll_ctl(priv->epfd, EPOLL_CTL_DEL, priv->listen_fd, NULL);
        priv->listening = 0;
    }

    priv->accept_resume = now + priv->accept_backoff;
}


void
amonitor_accept_resume(amonitor_sdk_priv_t *priv, int64_t now)
{
    struct epoll_event ev;

    if (priv->accept_resume == 0 || now < priv->accept_resume) {
        return;
    }

    priv->accept_resume = 0;

    if (priv->listen_fd == -1 || priv->listening) {
        return;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &priv->listen_fd;

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, priv->listen_fd, &ev) == 0) {
        priv->listening = 1;

    } else {
        priv->accept_resume = now + priv->accept_backoff;
    }
}
