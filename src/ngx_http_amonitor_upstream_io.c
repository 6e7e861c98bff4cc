/*
 * Copyright (C) AMonitor authors
 *
 * One upstream connection: the non-blocking connect, the client handshake
 * (request out, 101 in), the open WebSocket connection, whose messages go
 * to the router, and on failure the next attempt after a capped backoff
 * with jitter.  upstream.c creates the targets and keeps their list.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_store.h"
#include "ngx_http_amonitor_upstream.h"
#include "ngx_http_amonitor_upstream_room.h"


/* the handshake buffer's first size; it grows to AMON_WS_MAX_RESPONSE */
#define NGX_HTTP_AMONITOR_HS_SMALL 1024


static ngx_uint_t ngx_http_amonitor_upstream_hs_over(
    ngx_http_amonitor_upstream_t *u, ngx_event_t *ev, const char *what);
static void ngx_http_amonitor_upstream_opened(
    ngx_http_amonitor_upstream_t *u, size_t header_len);
static void ngx_http_amonitor_upstream_read(ngx_event_t *rev);
static void ngx_http_amonitor_upstream_write(ngx_event_t *wev);
static void ngx_http_amonitor_upstream_hs_write(ngx_event_t *wev);
static void ngx_http_amonitor_upstream_hs_read(ngx_event_t *rev);
static void ngx_http_amonitor_upstream_schedule(
    ngx_http_amonitor_upstream_t *u);
static ngx_int_t ngx_http_amonitor_upstream_hs_request(
    ngx_http_amonitor_upstream_t *u);
static ngx_err_t ngx_http_amonitor_upstream_connect_error(ngx_connection_t *c);
static void      ngx_http_amonitor_upstream_ssl_done(
         ngx_http_amonitor_upstream_t *u, ngx_int_t rc);
static void ngx_http_amonitor_upstream_hs_free(ngx_http_amonitor_upstream_t *u);
static ngx_int_t ngx_http_amonitor_upstream_hs_grow(
    ngx_http_amonitor_upstream_t *u, size_t size);


/* shutdown or timeout during the handshake: returns 1 when it is over */
static ngx_uint_t
ngx_http_amonitor_upstream_hs_over(
    ngx_http_amonitor_upstream_t *u, ngx_event_t *ev, const char *what)
{
    if (u->peer.connection->close) {
        u->stopped = 1;
        ngx_http_amonitor_upstream_fail(u);
        return 1;
    }

    if (ev->timedout) {
        ngx_http_amonitor_upstream_log_failure(u, 0,
            "SDK %s timed out after %M ms", what,
            u->worker->amcf->connect_timeout);
        ngx_http_amonitor_upstream_fail(u);
        return 1;
    }

    return 0;
}


static void
ngx_http_amonitor_upstream_hs_write(ngx_event_t *wev)
{
    ssize_t                       n;
    ngx_err_t                     err;
    ngx_connection_t             *c;
    ngx_http_amonitor_upstream_t *u;

    c = wev->data;
    u = c->data;

    if (ngx_http_amonitor_upstream_hs_over(u, wev, "connect")) {
        return;
    }

    if (u->state == NGX_HTTP_AMONITOR_UP_CONNECTING) {
        /* the outcome of a non-blocking connect() */
        err = ngx_http_amonitor_upstream_connect_error(c);

        if (err) {
            /* the latest failure is not the TLS one any more */
            u->tls_failed = 0;
            ngx_http_amonitor_upstream_log_failure(
                u, err, "cannot connect to the SDK");
            ngx_http_amonitor_upstream_fail(u);
            return;
        }

        if (u->tls && !u->ssl_handshaked) {
            /* wss://: TLS first, then the WebSocket handshake */
            ngx_http_amonitor_upstream_ssl_start(
                u, ngx_http_amonitor_upstream_ssl_done);
            return;
        }
    }

    u->state = NGX_HTTP_AMONITOR_UP_HANDSHAKE;
    u->log.action = "sending the handshake to an amonitor SDK";

    while (u->hs->pos < u->hs->last) {
        n = c->send(c, u->hs->pos, u->hs->last - u->hs->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_amonitor_upstream_fail(u);
            }
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_amonitor_upstream_log_failure(
                u, ngx_socket_errno, "cannot send the handshake to the SDK");
            ngx_http_amonitor_upstream_fail(u);
            return;
        }

        u->hs->pos += n;
    }

    /* request sent: wait for the response under the same timer */

    u->log.action = "reading the handshake response of an amonitor SDK";

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    ngx_add_timer(c->read, u->worker->amcf->connect_timeout);

    wev->handler = ngx_http_amonitor_upstream_write;
    u->hs->pos = u->hs->start;
    u->hs->last = u->hs->start;

    if (c->read->ready) {
        ngx_http_amonitor_upstream_hs_read(c->read);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_amonitor_upstream_fail(u);
    }
}


/* the TLS handshake ended: on to the WebSocket handshake, or the next try */
static void
ngx_http_amonitor_upstream_ssl_done(
    ngx_http_amonitor_upstream_t *u, ngx_int_t rc)
{
    ngx_connection_t *c;

    if (rc != NGX_OK) {
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    c = u->peer.connection;
    c->read->handler = ngx_http_amonitor_upstream_hs_read;
    c->write->handler = ngx_http_amonitor_upstream_hs_write;

    /* connected long ago: an error now is the SDK's, not the connect's */
    u->state = NGX_HTTP_AMONITOR_UP_HANDSHAKE;

    ngx_http_amonitor_upstream_hs_write(c->write);
}


static void
ngx_http_amonitor_upstream_hs_read(ngx_event_t *rev)
{
    int                           rc, status;
    size_t                        header_len;
    ssize_t                       n;
    const char                   *reason;
    ngx_connection_t             *c;
    ngx_http_amonitor_upstream_t *u;

    c = rev->data;
    u = c->data;

    if (ngx_http_amonitor_upstream_hs_over(u, rev, "handshake")) {
        return;
    }

    if (u->state != NGX_HTTP_AMONITOR_UP_HANDSHAKE
        || u->hs->pos != u->hs->start) {
        /* the request is not written yet */
        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            ngx_http_amonitor_upstream_fail(u);
        }
        return;
    }

    for (;;) {
        n = c->recv(c, u->hs->last, u->hs->end - u->hs->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_amonitor_upstream_fail(u);
            }
            return;
        }

        if ((n == 0 || n == NGX_ERROR) && u->ssl_error_len) {
            /* an alert of the SDK's TLS: a refused client certificate */
            ngx_http_amonitor_upstream_log_failure(u, 0,
                "TLS connection to the SDK failed during the handshake: %*s",
                u->ssl_error_len, u->ssl_error);
            ngx_http_amonitor_upstream_fail(u);
            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_amonitor_upstream_log_failure(u,
                n == NGX_ERROR ? ngx_socket_errno : 0,
                "SDK closed the connection during the handshake");
            ngx_http_amonitor_upstream_fail(u);
            return;
        }

        u->hs->last += n;

        rc = amon_ws_client_response(u->hs->start, u->hs->last - u->hs->start,
            u->key, &header_len, &status, &reason);

        if (rc == AMON_AGAIN) {
            if (u->hs->last < u->hs->end) {
                continue;
            }

            if (u->hs->end - u->hs->start < AMON_WS_MAX_RESPONSE) {
                /* a long response: up to the full limit */
                if (ngx_http_amonitor_upstream_hs_grow(u, AMON_WS_MAX_RESPONSE)
                    != NGX_OK) {
                    ngx_http_amonitor_upstream_fail(u);
                    return;
                }

                continue;
            }

            rc = AMON_ETOOBIG;
        }

        if (rc != AMON_OK) {
            if (rc == AMON_EHANDSHAKE) {
                ngx_http_amonitor_upstream_log_failure(u, 0,
                    "SDK refused the handshake: status %d, %s", status, reason);

            } else {
                ngx_http_amonitor_upstream_log_failure(
                    u, 0, "invalid handshake response: %s", amon_strerror(rc));
            }

            ngx_http_amonitor_upstream_fail(u);
            return;
        }

        ngx_http_amonitor_upstream_opened(u, header_len);
        return;
    }
}


static void
ngx_http_amonitor_upstream_opened(
    ngx_http_amonitor_upstream_t *u, size_t header_len)
{
    size_t                      extra;
    ngx_connection_t           *c;
    ngx_http_amonitor_worker_t *w;

    c = u->peer.connection;
    w = u->worker;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    /* nginx's TLS lines are the open connection's again */
    ngx_http_amonitor_upstream_ssl_log_done(u);

    if (ngx_http_amonitor_conn_init(&u->wc, c, &w->frames, 1) != NGX_OK) {
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    /*
     * After an outage the SDK counts as back once its first message
     * arrives: an SDK that rejects the agent's token accepts the
     * handshake, then closes with 4401.  Until then the connection's
     * faults are failed attempts like the others (conn.c's own lines at
     * info while the outage is summarised).
     */
    u->answered = 0;
    u->wc.log_level = u->down ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (!u->down) {
        ngx_http_amonitor_upstream_log_up(u);
    }

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    u->state = NGX_HTTP_AMONITOR_UP_OPEN;
    u->opened = ngx_current_msec;

    if (!u->down) {
        /* else when it answers: a 4401 is one more failed attempt */
        u->failures = 0;
    }

    u->log.action = "relaying messages of an amonitor SDK";

    c->read->handler = ngx_http_amonitor_upstream_read;
    c->write->handler = ngx_http_amonitor_upstream_write;
    c->idle = 1;

    (void) ngx_atomic_fetch_add(&w->counters->upstreams_open, 1);

    ngx_http_amonitor_conn_start_ping(&u->wc, w->amcf->ping);

    ngx_http_amonitor_router_upstream_open(u);

    if (u->state != NGX_HTTP_AMONITOR_UP_OPEN) {
        return;
    }

    extra = (u->hs->last - u->hs->start) - header_len;

    if (extra) {
        /* frames that came with the response: usually the heartbeat */
        if (ngx_http_amonitor_conn_feed(
                &u->wc, u->hs->start + header_len, extra)
            != NGX_OK) {
            return;
        }
    }

    /* an open connection reads into the worker's buffer */
    ngx_http_amonitor_upstream_hs_free(u);

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
        return;
    }

#if (NGX_SSL)
    /* the session tickets came with the response */
    ngx_http_amonitor_conn_tls_idle(&u->wc);
#endif
}


static void
ngx_http_amonitor_upstream_read(ngx_event_t *rev)
{
    ngx_connection_t             *c;
    ngx_http_amonitor_upstream_t *u;

    c = rev->data;
    u = c->data;

    if (rev->timedout) {
        /* the SDK did not answer our close frame in time */
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    if (c->close && !c->error && ngx_http_amonitor_cluster_quit(u->worker)) {
        /* the actions it runs for the cluster first: closed after them */
        c->close = 0;

    } else if (c->close) {
        /* graceful shutdown of the worker */
        u->stopped = 1;
        c->close = 0;

        ngx_http_amonitor_conn_close_frame(
            &u->wc, AMON_WS_CLOSE_GOING_AWAY, "agent shutting down");

        if (u->wc.q_count || c->error) {
            ngx_http_amonitor_upstream_fail(u);
            return;
        }

        /*
         * As the client, wait a little for the SDK to close the TCP
         * connection (RFC 6455 7.1.1), reading and discarding what it still
         * sends: closing a socket with unread input resets it, and the
         * reset can destroy our close frame before the SDK reads it.
         */
        c->idle = 0;
        rev->cancelable = 0; /* the worker waits for this */
        ngx_add_timer(rev, NGX_HTTP_AMONITOR_LINGER);
    }

    ngx_http_amonitor_conn_read(&u->wc);
}


static void
ngx_http_amonitor_upstream_write(ngx_event_t *wev)
{
    ngx_connection_t             *c;
    ngx_http_amonitor_upstream_t *u;

    c = wev->data;
    u = c->data;

    if (u->state != NGX_HTTP_AMONITOR_UP_OPEN) {
        return;
    }

    if (ngx_http_amonitor_conn_flush(&u->wc) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &u->log, ngx_socket_errno,
            "amonitor: cannot write to the SDK");
        ngx_http_amonitor_upstream_fail(u);
    }
}


void
ngx_http_amonitor_upstream_message(
    ngx_http_amonitor_conn_t *wc, ngx_uint_t opcode, u_char *data, size_t len)
{
    ngx_http_amonitor_upstream_t *u = wc->data;

    if (!u->answered) {
        u->answered = 1;
        u->failures = 0;
        u->wc.log_level = NGX_LOG_ERR;

        if (u->down) {
            ngx_http_amonitor_upstream_log_up(u);
        }
    }

    ngx_http_amonitor_router_upstream_message(u, opcode, data, len);
}


void
ngx_http_amonitor_upstream_on_close(ngx_http_amonitor_conn_t *wc)
{
    ngx_http_amonitor_upstream_t *u = wc->data;

    ngx_http_amonitor_upstream_log_close(u);

    ngx_http_amonitor_upstream_fail(u);
}


/* 0 once a non-blocking connect() succeeded, else why it failed */
static ngx_err_t
ngx_http_amonitor_upstream_connect_error(ngx_connection_t *c)
{
    int       err;
    socklen_t len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    return (ngx_err_t) err;
}


/* the client handshake request of this attempt, with a fresh key */
static ngx_int_t
ngx_http_amonitor_upstream_hs_request(ngx_http_amonitor_upstream_t *u)
{
    u_char     rnd[16];
    size_t     size;
    amon_str_t hp, path, token;

    ngx_http_amonitor_random(rnd, 16);

    amon_ws_make_key(rnd, u->key);

    hp.data = u->host_port.data;
    hp.len = u->host_port.len;
    path.data = u->path.data;
    path.len = u->path.len;
    token.data = u->token.len ? u->token.data : NULL;
    token.len = u->token.len;

    size = NGX_HTTP_AMONITOR_HS_SMALL;

    for (;;) {
        if (ngx_http_amonitor_upstream_hs_grow(u, size) != NGX_OK) {
            return NGX_ERROR;
        }

        u->hs->pos = u->hs->start;
        u->hs->last = u->hs->start
            + amon_ws_client_request(u->hs->start, u->hs->end - u->hs->start,
                hp, path, u->key, token);

        if (u->hs->last > u->hs->start) {
            return NGX_OK;
        }

        if (size == AMON_WS_MAX_RESPONSE) {
            break;
        }

        /* a long path or token */
        size = AMON_WS_MAX_RESPONSE;
    }

    ngx_log_error(NGX_LOG_ALERT, &u->log, 0,
        "amonitor: cannot build the handshake request");

    return NGX_ERROR;
}


/*
 * The handshake buffer holds "size" bytes, keeping what it held: most
 * requests and responses fit in NGX_HTTP_AMONITOR_HS_SMALL, so a target
 * that reconnects does not leave an 8 KiB hole in the heap behind it.
 */
static ngx_int_t
ngx_http_amonitor_upstream_hs_grow(ngx_http_amonitor_upstream_t *u, size_t size)
{
    u_char *p;

    if (u->hs->start && (size_t) (u->hs->end - u->hs->start) >= size) {
        return NGX_OK;
    }

    p = ngx_alloc(size, &u->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (u->hs->start) {
        ngx_memcpy(p, u->hs->start, u->hs->last - u->hs->start);
        u->hs->pos = p + (u->hs->pos - u->hs->start);
        u->hs->last = p + (u->hs->last - u->hs->start);
        ngx_free(u->hs->start);

    } else {
        u->hs->pos = p;
        u->hs->last = p;
    }

    u->hs->start = p;
    u->hs->end = p + size;

    return NGX_OK;
}


void
ngx_http_amonitor_upstream_connect(ngx_http_amonitor_upstream_t *u)
{
    ngx_err_t                   err;
    ngx_int_t                   rc;
    ngx_uint_t                  level;
    ngx_addr_t                 *addr;
    ngx_uint_t                  spent;
    ngx_connection_t           *c;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (u->stopped || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (!ngx_http_amonitor_cluster_may_dial(u)) {
        /* amonitor_cluster: another worker holds it; a lease kicks it */
        u->state = NGX_HTTP_AMONITOR_UP_BACKOFF;
        return;
    }

    spent = ngx_http_amonitor_upstream_dial_room(w);

    if (spent != NGX_HTTP_AMONITOR_ROOM) {
        ngx_http_amonitor_upstream_log_starved(u, spent);
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    addr = &u->addrs[u->next_addr++ % u->naddrs];

    ngx_memzero(&u->peer, sizeof(ngx_peer_connection_t));

    u->peer.sockaddr = addr->sockaddr;
    u->peer.socklen = addr->socklen;
    u->peer.name = &addr->name;
    u->peer.get = ngx_event_get_peer;
    u->peer.log = &u->log;

    /*
     * nginx's own lines about refused or reset connections go to "info":
     * this file says what failed, in its words, once per outage
     */
    u->peer.log_error = NGX_ERROR_INFO;

    u->log.action = "connecting to an amonitor SDK";
    u->state = NGX_HTTP_AMONITOR_UP_CONNECTING;
    u->ssl_handshaked = 0;

    /*
     * The same for an immediate "connect() failed" (error) and for a
     * socket() that failed (alert: out of descriptors, at every attempt):
     * said below, once per outage, with the system's reason.
     */
    level = u->log.log_level;
    if (level > NGX_LOG_EMERG) {
        u->log.log_level = NGX_LOG_EMERG;
    }

    ngx_set_socket_errno(0);
    rc = ngx_event_connect_peer(&u->peer);
    err = ngx_socket_errno;

    u->log.log_level = level;

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        u->tls_failed = 0;
        ngx_http_amonitor_upstream_log_failure(u,
            (rc == NGX_DECLINED || rc == NGX_ERROR) ? err : 0,
            "cannot connect to the SDK");
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    c = u->peer.connection;
    c->data = u;
    c->read->handler = ngx_http_amonitor_upstream_hs_read;
    c->write->handler = ngx_http_amonitor_upstream_hs_write;

    /* a graceful shutdown need not wait for the handshake timeout */
    c->idle = 1;
    c->read->cancelable = 1;
    c->write->cancelable = 1;

    if (ngx_http_amonitor_upstream_hs_request(u) != NGX_OK) {
        ngx_http_amonitor_upstream_fail(u);
        return;
    }

    ngx_add_timer(c->write, w->amcf->connect_timeout);

    if (rc == NGX_OK) {
        ngx_http_amonitor_upstream_hs_write(c->write);
    }
}


/* close whatever is open and, unless stopping, try again later */
void
ngx_http_amonitor_upstream_fail(ngx_http_amonitor_upstream_t *u)
{
    ngx_uint_t                  was_open;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;
    was_open = (u->state == NGX_HTTP_AMONITOR_UP_OPEN);

    if (was_open) {
        ngx_http_amonitor_upstream_say_quiet(u);
        ngx_http_amonitor_conn_free(&u->wc);
        (void) ngx_atomic_fetch_add(&w->counters->upstreams_open, -1);

        if (ngx_current_msec - u->opened > w->amcf->reconnect_max) {
            /* it was up for a while: start the backoff over */
            u->backoff = w->amcf->reconnect_min;
        }
    }

    if (u->peer.connection) {
        if (u->tls) {
            ngx_http_amonitor_upstream_ssl_close(u->peer.connection);
        }

        ngx_close_connection(u->peer.connection);
        u->peer.connection = NULL;
    }

    ngx_http_amonitor_upstream_hs_free(u);
    ngx_http_amonitor_upstream_ssl_log_done(u);

    u->state = NGX_HTTP_AMONITOR_UP_BACKOFF;
    u->failures++;

    ngx_http_amonitor_router_upstream_down(u, was_open);

    ngx_http_amonitor_upstream_schedule(u);
}


static void
ngx_http_amonitor_upstream_schedule(ngx_http_amonitor_upstream_t *u)
{
    ngx_msec_t                  delay;
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (u->stopped || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    delay = ngx_http_amonitor_backoff(w->amcf, &u->backoff);

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, &u->log, 0,
        "amonitor upstream reconnect in %M ms", delay);

    ngx_add_timer(&u->reconnect, delay);
}


void
ngx_http_amonitor_upstream_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_amonitor_upstream_connect(ev->data);
}


static void
ngx_http_amonitor_upstream_hs_free(ngx_http_amonitor_upstream_t *u)
{
    if (u->hs->start) {
        ngx_free(u->hs->start);
        ngx_http_amonitor_frames_trim_soon(&u->worker->frames);
        u->hs->start = NULL;
        u->hs->end = NULL;
        u->hs->pos = NULL;
        u->hs->last = NULL;
    }
}
