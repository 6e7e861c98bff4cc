/*
 * Copyright (C) AMonitor authors
 *
 * What the error log says about one upstream.  An outage of a target is
 * logged once at "error", in words; further failed attempts are counted
 * and summarised at most once a minute; the end of the outage is logged
 * once.  Every line starts with "amonitor:" and ends with the upstream's
 * context (", upstream: ID, peer: URL").
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_amonitor.h"
#include "ngx_http_amonitor_upstream.h"
#include "ngx_http_amonitor_upstream_room.h"


static void ngx_http_amonitor_upstream_log_attempt(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t said, ngx_err_t err,
    const char *fmt, va_list args);
static void ngx_http_amonitor_upstream_log_said(
    ngx_http_amonitor_upstream_t *u, const char *fmt, ...);


/*
 * One failed attempt to reach the SDK (connect, handshake, or a
 * connection that ended before the SDK's first message).  "err", when not
 * 0, is appended in words: "cannot connect to the SDK: connection refused".
 */
void
ngx_http_amonitor_upstream_log_failure(
    ngx_http_amonitor_upstream_t *u, ngx_err_t err, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    ngx_http_amonitor_upstream_log_attempt(u, 0, err, fmt, args);
    va_end(args);
}


/*
 * No connection or descriptor was free to dial it (spent: what ran
 * short): the worker says so for all its targets, once a minute, not
 * once per target and attempt; the target is in an outage all the same,
 * so that its end is logged ("connected again") as any other's.
 */
void
ngx_http_amonitor_upstream_log_starved(
    ngx_http_amonitor_upstream_t *u, ngx_uint_t spent)
{
    ngx_http_amonitor_worker_t *w;

    w = u->worker;

    if (w->starved_logged == 0
        || ngx_current_msec - w->starved_logged >= 60000) {
        if (spent == NGX_HTTP_AMONITOR_NO_CONN) {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0,
                "amonitor: no free connection to dial target \"%V\" (nor, "
                "for a minute, the next ones): %ui worker_connections are "
                "not enough for this worker's targets and panels",
                &u->id, ngx_cycle->connection_n);

        } else {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0,
                "amonitor: no free descriptor to dial target \"%V\" (nor, "
                "for a minute, the next ones): %ui open files "
                "(worker_rlimit_nofile) are not enough for this worker's "
                "targets and panels, %ui of them taken by other files",
                &u->id, w->nofile, w->fd_base);
        }

        w->starved_logged = ngx_current_msec ? ngx_current_msec : 1;
    }

    ngx_http_amonitor_upstream_log_said(u,
        "cannot connect to the SDK: this worker's %s are all in use",
        (spent == NGX_HTTP_AMONITOR_NO_CONN)
            ? "worker_connections"
            : "descriptors (worker_rlimit_nofile)");
}


/* the same, when conn.c already logged why at "error" (not yet down) */
static void
ngx_http_amonitor_upstream_log_said(
    ngx_http_amonitor_upstream_t *u, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    ngx_http_amonitor_upstream_log_attempt(u, 1, 0, fmt, args);
    va_end(args);
}


static void
ngx_http_amonitor_upstream_log_attempt(ngx_http_amonitor_upstream_t *u,
    ngx_uint_t said, ngx_err_t err, const char *fmt, va_list args)
{
    u_char    *p, *q, *last;
    ngx_msec_t now;

    last = u->reason + NGX_HTTP_AMONITOR_REASON_LEN;

    p = ngx_vslprintf(u->reason, last, fmt, args);

    if (err && last - p > 2) {
        p = ngx_slprintf(p, last, ": ");
        q = p;
        p = ngx_strerror(err, p, last - p);

        /* "Connection refused" reads as "connection refused" mid-line */
        if (q < p && *q >= 'A' && *q <= 'Z') {
            *q = (u_char) (*q | 0x20);
        }
    }

    u->reason_len = p - u->reason;
    now = ngx_current_msec;

    if (!u->down) {
        u->down = 1;
        u->down_since = now;
        u->summary_at = now;
        u->down_attempts = 1;
        u->unreported = 0;

        if (!said) {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0, "amonitor: %*s",
                u->reason_len, u->reason);
        }

        return;
    }

    u->down_attempts++;
    u->unreported++;

    if (now - u->summary_at < NGX_HTTP_AMONITOR_LOG_SUMMARY) {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, &u->log, 0, "amonitor: %*s",
            u->reason_len, u->reason);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, &u->log, 0,
        "amonitor: SDK still down: %ui more failed attempts in %M s, "
        "the last: %*s",
        u->unreported, (now - u->summary_at) / 1000, u->reason_len, u->reason);

    u->summary_at = now;
    u->unreported = 0;
}


/*
 * The SDK answered: after an outage once its first message arrived (an
 * SDK that rejects the agent's token completes the handshake first), else
 * when the handshake completes.
 */
void
ngx_http_amonitor_upstream_log_up(ngx_http_amonitor_upstream_t *u)
{
    if (!u->down) {
        ngx_log_error(
            NGX_LOG_INFO, &u->log, 0, "amonitor: connected to the SDK");
        return;
    }

    /* at the level of the line that began the outage, so both show */
    ngx_log_error(NGX_LOG_ERR, &u->log, 0,
        "amonitor: connected to the SDK again after %ui failed attempts "
        "in %M s",
        u->down_attempts, (ngx_current_msec - u->down_since) / 1000);

    u->down = 0;
}


/*
 * The connection ended: the SDK closed it (or it broke), or the SDK
 * answered a close the agent started.  The agent starts the close
 * handshake and waits for the SDK's answer only when its worker shuts
 * down (reload, quit: "stopped") or when the SDK is over
 * amonitor_connection_buffer_limit ("over", logged when it happened); an
 * echo of that close is not the SDK's doing, and not a warning.
 */
void
ngx_http_amonitor_upstream_log_close(ngx_http_amonitor_upstream_t *u)
{
    if (u->wc.close_received && (u->stopped || u->wc.over)) {
        ngx_log_error(NGX_LOG_INFO, &u->log, 0,
            "amonitor: SDK answered the agent's close (%s) with %ui",
            u->stopped ? "agent shutting down" : "over the buffer limit",
            u->wc.peer_close);
        return;
    }

    if (!u->answered && !u->stopped) {
        /* it never spoke: one more failed attempt */
        if (u->wc.close_received
            && u->wc.peer_close == AMON_WS_CLOSE_UNAUTHORIZED) {
            ngx_http_amonitor_upstream_log_failure(
                u, 0, "SDK rejected the agent's token (close 4401)");

        } else if (u->wc.close_received) {
            ngx_http_amonitor_upstream_log_failure(u, 0,
                "SDK closed the connection with %ui before its first "
                "message",
                u->wc.peer_close);

        } else {
            /* the peer's fault: conn.c logged it, at error unless down */
            ngx_http_amonitor_upstream_log_said(
                u, "the connection to the SDK ended before its first message");
        }

    } else if (u->wc.close_received) {
        if (u->wc.peer_close == AMON_WS_CLOSE_UNAUTHORIZED) {
            ngx_log_error(NGX_LOG_ERR, &u->log, 0,
                "amonitor: SDK rejected the agent's token "
                "(close 4401)");

        } else {
            ngx_log_error(NGX_LOG_WARN, &u->log, 0,
                "amonitor: SDK closed the connection with %ui",
                u->wc.peer_close);
        }
    }
}


/* the context nginx appends to every line of an upstream's log */
u_char *
ngx_http_amonitor_upstream_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                       *p;
    ngx_http_amonitor_upstream_t *u;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    u = log->data;

    p = ngx_snprintf(buf, len, ", upstream: %V, peer: %V", &u->id, &u->norm);

    return p;
}
