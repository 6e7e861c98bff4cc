/*
 * Copyright (C) AMonitor authors
 *
 * One agent connection: the HTTP upgrade (with the bearer token check),
 * frame input through the core's decoder, a bounded output queue written
 * without ever blocking, the close handshake and the connection timers.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amonitor_sdk_int.h"
#include "amon_ws_handshake.h"


static void amonitor_conn_handshake(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
static int amonitor_conn_accept(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int *authorized);
static void amonitor_conn_reject(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    int status, const char *reason);
static void amonitor_conn_open(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
static void amonitor_conn_frames(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    unsigned char *p, size_t len);
static void amonitor_conn_closing(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
static int  amonitor_conn_reply(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     const unsigned char *p, size_t len);
static int  amonitor_conn_append(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     const unsigned char *p, size_t len);
static int  amonitor_conn_queue(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     const unsigned char *hdr, size_t hlen, const unsigned char *p, size_t len);
static int  amonitor_conn_events(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
static int  amonitor_token_ok(amonitor_sdk_priv_t *priv, amon_str_t auth);
static void amonitor_conn_peer(
    amonitor_conn_t *c, const struct sockaddr_storage *ss);

/* the peer's address: as text for the log, as bytes to count places by */
static void
amonitor_conn_peer(amonitor_conn_t *c, const struct sockaddr_storage *ss)
{
    char                       text[INET6_ADDRSTRLEN];
    const struct sockaddr_in  *sin;
    const struct sockaddr_in6 *sin6;

    if (ss->ss_family == AF_INET) {
        sin = (const struct sockaddr_in *) ss;
        memcpy(c->addr, &sin->sin_addr, 4);
        c->addr_len = 4;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", text,
            (unsigned) ntohs(sin->sin_port));

    } else if (ss->ss_family == AF_INET6) {
        sin6 = (const struct sockaddr_in6 *) ss;
        memcpy(c->addr, &sin6->sin6_addr, 16);
        c->addr_len = 16;
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", text,
            (unsigned) ntohs(sin6->sin6_port));
    }
}


amonitor_conn_t *
amonitor_conn_new(amonitor_sdk_priv_t *priv, int fd)
{
    socklen_t               slen;
    amonitor_conn_t        *c;
    struct epoll_event      ev;
    struct sockaddr_storage ss;

    c = calloc(1, sizeof(amonitor_conn_t));
    if (c == NULL) {
        amonitor_log(priv, AMONITOR_LOG_ERROR, "connection: out of memory");
        return NULL;
    }

    c->fd = fd;
    c->id = priv->next_conn_id++;
    c->state = AMONITOR_CONN_HANDSHAKE;
    c->last_in = amon_posix_now_ms();
    c->deadline = c->last_in + AMONITOR_HANDSHAKE_MS;

    amon_ws_request_init(&c->request, AMONITOR_HANDSHAKE_MAX);
    amon_ws_session_init(&c->session, 0, priv->max_message, NULL, NULL, NULL);

    slen = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *) &ss, &slen) == 0) {
        amonitor_conn_peer(c, &ss);
    }

    if (priv->tls_ctx && amonitor_tls_accept(priv, c) != AMONITOR_OK) {
        free(c);
        return NULL;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        amonitor_log(
            priv, AMONITOR_LOG_ERROR, "epoll_ctl(): %s", strerror(errno));
        amonitor_tls_free(c);
        free(c);
        return NULL;
    }

    c->next = priv->conns;
    priv->conns = c;
    priv->nconns++;

    amonitor_log(priv, AMONITOR_LOG_DEBUG, "connection %llu from %s",
        (unsigned long long) c->id, c->peer);

    return c;
}


void
amonitor_conn_free(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    if (c->fd != -1) {
        amonitor_conn_abort(priv, c);
    }

    amon_buf_free(&c->in, NULL);
    amon_buf_free(&c->out, NULL);
    amon_ws_session_free(&c->session);
    free(c);
}


/* Close the socket now, without a close handshake. */
void
amonitor_conn_abort(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    if (c->fd == -1) {
        c->state = AMONITOR_CONN_DEAD;
        return;
    }

    (void) epoll_ctl(priv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    amonitor_tls_free(c);
    close(c->fd);
    c->fd = -1;

    if (c->counted) {
        c->counted = 0;
        amonitor_stat_dec(priv, connections);
    }

    c->state = AMONITOR_CONN_DEAD;
    priv->nconns--;

    amonitor_log(priv, AMONITOR_LOG_DEBUG, "connection %llu closed",
        (unsigned long long) c->id);
}


void
amonitor_conn_read(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    int      rc;
    ssize_t  n;
    unsigned rounds;

    if (c->ssl && !c->tls_done) {
        rc = amonitor_tls_handshake(priv, c);

        if (rc == -1) {
            amonitor_conn_abort(priv, c);
        }

        if (rc != 1) {
            return;
        }
    }

    /*
     * Over TLS a read returns at most one record, which fits the buffer
     * (16 KiB): nothing stays inside OpenSSL for epoll not to see.
     */
    for (rounds = 0; rounds < 4 && c->state != AMONITOR_CONN_DEAD; rounds++) {
        n = c->ssl ? amonitor_tls_recv(c, priv->rbuf, sizeof(priv->rbuf))
                   : recv(c->fd, priv->rbuf, sizeof(priv->rbuf), 0);

        if (n == 0) {
            amonitor_conn_abort(priv, c);
            return;
        }

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                amonitor_log(priv, AMONITOR_LOG_INFO,
                    "connection %llu: recv(): %s", (unsigned long long) c->id,
                    strerror(errno));
                amonitor_conn_abort(priv, c);
            }

            return;
        }

        c->last_in = amon_posix_now_ms();

        if (c->http_rejected) {
            continue; /* the error response is on its way: ignore input */
        }

        if (c->state == AMONITOR_CONN_HANDSHAKE) {
            /*
             * The request parser refuses a head over AMONITOR_HANDSHAKE_MAX
             * (431); one read more of room keeps the frames an agent sends
             * right behind a short request from counting as head.
             */
            if (amon_buf_reserve(&c->in, (size_t) n,
                    AMONITOR_HANDSHAKE_MAX + sizeof(priv->rbuf), NULL)
                != AMON_OK) {
                amonitor_conn_reject(priv, c, 431, "request header too large");
                return;
            }

            memcpy(c->in.data + c->in.len, priv->rbuf, (size_t) n);
            c->in.len += (size_t) n;

            amonitor_conn_handshake(priv, c);
            continue;
        }

        amonitor_conn_frames(priv, c, priv->rbuf, (size_t) n);
    }
}


static void
amonitor_conn_handshake(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    int    rc, authorized;
    size_t hlen, rest;

    rc = amon_ws_request_feed(&c->request, c->in.data, c->in.len);

    if (rc == AMON_AGAIN) {
        return; /* more to come */
    }

    if (rc != AMON_OK) {
        amonitor_conn_reject(priv, c, c->request.status, c->request.reason);
        return;
    }

    if (amonitor_conn_accept(priv, c, &authorized) != AMONITOR_OK) {
        return; /* rejected with an HTTP error */
    }

    if (!authorized) {
        amonitor_stat_inc(priv, rejected);
        amonitor_log(priv, AMONITOR_LOG_INFO,
            "connection %llu from %s: missing or wrong bearer token",
            (unsigned long long) c->id, c->peer);
        c->state = AMONITOR_CONN_OPEN;
        amonitor_conn_close(
            priv, c, AMON_WS_CLOSE_UNAUTHORIZED, "unauthorized");
        amon_buf_free(&c->in, NULL);
        return;
    }

    amonitor_conn_open(priv, c);

    if (c->state != AMONITOR_CONN_OPEN) {
        return;
    }

    /* frames the agent sent right behind its request */
    hlen = c->request.header_len;
    rest = c->in.len - hlen;

    if (rest) {
        memmove(priv->rbuf, c->in.data + hlen, rest);
    }

    amon_buf_free(&c->in, NULL);

    if (rest) {
        amonitor_conn_frames(priv, c, priv->rbuf, rest);
    }
}


/*
 * A valid upgrade request (the core parsed and checked it): check the
 * path, answer 101 and tell whether the token matched.
 */
static int
amonitor_conn_accept(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int *authorized)
{
    size_t               n;
    amon_str_t           target;
    const unsigned char *q;
    unsigned char        resp[256];

    target = c->request.target;

    if (priv->path) {
        q = memchr(target.data, '?', target.len);
        n = q ? (size_t) (q - target.data) : target.len;

        if (n != strlen(priv->path)
            || memcmp(target.data, priv->path, n) != 0) {
            amonitor_conn_reject(priv, c, 404, "not found");
            return AMONITOR_ERR_INVAL;
        }
    }

    n = amon_ws_server_response(resp, sizeof(resp), c->request.req.key);
    if (n == 0) {
        amonitor_conn_reject(priv, c, 400, "bad Sec-WebSocket-Key");
        return AMONITOR_ERR_INVAL;
    }

    *authorized = (priv->token == NULL)
        || amonitor_token_ok(priv, c->request.authorization);

    return amonitor_conn_append(priv, c, resp, n);
}


/* "Bearer <token>", scheme case-insensitive; compared in constant time. */
static int
amonitor_token_ok(amonitor_sdk_priv_t *priv, amon_str_t auth)
{
    size_t        i, tlen;
    unsigned char diff;
    amon_str_t    scheme, cred;

    if (auth.data == NULL || auth.len < 7) {
        return 0;
    }

    scheme.data = auth.data;
    scheme.len = 6;

    if (!amon_str_eq_ci(scheme, "bearer")
        || (auth.data[6] != ' ' && auth.data[6] != '\t')) {
        return 0;
    }

    cred = amon_str_trim(auth.data + 7, auth.len - 7);
    tlen = strlen(priv->token);

    diff = (unsigned char) (cred.len != tlen);

    for (i = 0; i < tlen; i++) {
        diff |= (unsigned char) (priv->token[i]
            ^ (i < cred.len ? cred.data[i] : 0));
    }

    return diff == 0;
}


static void
amonitor_conn_reject(amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int status,
    const char *reason)
{
    int         n;
    const char *text;
    char        resp[512];

    switch (status) {
    case 400: text = "Bad Request"; break;
    case 404: text = "Not Found"; break;
    case 405: text = "Method Not Allowed"; break;
    case 426: text = "Upgrade Required"; break;
    case 431: text = "Request Header Fields Too Large"; break;
    default: text = "Error"; break;
    }

    n = snprintf(resp, sizeof(resp),
        "HTTP/1.1 %d %s\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: %zu\r\n"
        "%s"
        "Connection: close\r\n\r\n%s\n",
        status, text, strlen(reason) + 1,
        status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", reason);

    amonitor_stat_inc(priv, rejected);
    amonitor_log(priv, AMONITOR_LOG_INFO,
        "connection %llu from %s: handshake rejected: %d %s",
        (unsigned long long) c->id, c->peer, status, reason);

    amon_buf_free(&c->in, NULL);

    /*
     * After the response: shut down our side and read until the client
     * closes (or the closing timer fires); closing with unread input
     * would send a reset that can destroy the response.
     */
    c->state = AMONITOR_CONN_CLOSING;
    c->http_rejected = 1;
    c->deadline = amon_posix_now_ms() + AMONITOR_CLOSING_MS;

    if (n > 0 && (size_t) n < sizeof(resp)) {
        amonitor_conn_append(priv, c, (unsigned char *) resp, (size_t) n);

    } else {
        amonitor_conn_abort(priv, c);
    }
}


static void
amonitor_conn_open(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    c->state = AMONITOR_CONN_OPEN;
    c->deadline = 0;
    c->counted = 1;

    amonitor_stat_inc(priv, connections);
    amonitor_stat_inc(priv, connections_total);

    amonitor_log(priv, AMONITOR_LOG_INFO, "agent connected from %s (%llu)",
        c->peer, (unsigned long long) c->id);

    /* register and the first heartbeat, by the layer above */
    priv->on_open(priv, c);

    if (priv->heartbeat_ms && c->state == AMONITOR_CONN_OPEN) {
        c->next_heartbeat = amon_posix_now_ms() + priv->heartbeat_ms;
    }
}


/*
 * Input after the handshake, through the core's session: whole messages,
 * pongs and close replies as every endpoint makes them.
 */
static void
amonitor_conn_frames(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, unsigned char *p, size_t len)
{
    int                     rc;
    size_t                  consumed;
    amon_ws_session_event_t ev;

    while (c->state == AMONITOR_CONN_OPEN
        || (c->state == AMONITOR_CONN_CLOSING && !c->close_received
            && !c->input_error)) {
        rc = amon_ws_session_feed(&c->session, p, len, &consumed, &ev);

        p += consumed;
        len -= consumed;

        if (rc == AMON_AGAIN) {
            return;
        }

        if (rc < 0) {
            c->input_error = 1;

            if (c->state != AMONITOR_CONN_OPEN) {
                /* a broken peer while closing: just hang up */
                amonitor_conn_abort(priv, c);
                return;
            }

            amonitor_stat_inc(priv, protocol_errors);
            amonitor_log(priv, AMONITOR_LOG_INFO,
                "connection %llu: %s, closing with %u",
                (unsigned long long) c->id, amon_strerror(rc),
                (unsigned) amon_close_code(rc));
            amonitor_conn_closing(priv, c);
            (void) amonitor_conn_append(priv, c, ev.reply, ev.reply_len);
            return;
        }

        switch (ev.type) {

        case AMON_WS_SESSION_MESSAGE:
            priv->on_message(priv, c, ev.opcode, ev.data, ev.len);
            break;

        case AMON_WS_SESSION_PING:
            if (ev.reply_len && c->state == AMONITOR_CONN_OPEN) {
                (void) amonitor_conn_reply(priv, c, ev.reply, ev.reply_len);
            }
            break;

        case AMON_WS_SESSION_CLOSE:
            c->close_received = 1;

            if (ev.reply_len && c->state == AMONITOR_CONN_OPEN) {
                /* echo the code, then hang up once it is written */
                amonitor_conn_closing(priv, c);
                (void) amonitor_conn_append(priv, c, ev.reply, ev.reply_len);

            } else if (c->out.len == c->out_pos) {
                amonitor_conn_abort(priv, c);

            } else {
                c->close_after_flush = 1;
            }
            return;

        default: /* pongs need nothing */ break;
        }
    }
}


/*
 * Start the close handshake: queue a close frame (it is never dropped),
 * refuse further frames, close the socket once the peer answered or the
 * closing timer fired.
 */
void
amonitor_conn_close(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    uint16_t code, const char *reason)
{
    size_t        n;
    unsigned char frame[AMON_WS_CONTROL_FRAME_MAX];

    if (c->state != AMONITOR_CONN_OPEN) {
        return;
    }

    n = amon_ws_session_close(&c->session, frame, sizeof(frame), code, reason);

    amonitor_conn_closing(priv, c);

    if (n == 0 || amonitor_conn_append(priv, c, frame, n) != AMONITOR_OK) {
        amonitor_conn_abort(priv, c);
    }
}


/* our close frame is on its way: no more frames, the closing timer runs */
static void
amonitor_conn_closing(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    c->state = AMONITOR_CONN_CLOSING;
    c->deadline = amon_posix_now_ms() + AMONITOR_CLOSING_MS;
    c->next_heartbeat = 0;

    if (c->close_received) {
        c->close_after_flush = 1;
    }
}


/* a pong the session made: queued unless the agent stopped reading */
static int
amonitor_conn_reply(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const unsigned char *p, size_t len)
{
    size_t queued;

    if (len == 0) {
        return AMONITOR_OK;
    }

    queued = c->out.len - c->out_pos;

    if (queued + len > priv->max_send_queue * AMONITOR_CONN_HARD_FACTOR) {
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "connection %llu: agent does not read, closing (%zu bytes "
            "queued)",
            (unsigned long long) c->id, queued);
        amonitor_conn_abort(priv, c);
        return AMONITOR_ERR_FULL;
    }

    return amonitor_conn_append(priv, c, p, len);
}


int
amonitor_conn_send_frame(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    unsigned opcode, const unsigned char *p, size_t len, int droppable)
{
    size_t        queued, hlen;
    unsigned char hdr[AMON_MAX_FRAME_HEADER];

    if (c->state != AMONITOR_CONN_OPEN) {
        return AMONITOR_ERR_STATE;
    }

    queued = c->out.len - c->out_pos;

    if (droppable && queued > priv->max_send_queue) {
        amonitor_stat_inc(priv, dropped);
        amonitor_log(priv, AMONITOR_LOG_DEBUG,
            "connection %llu: slow agent, message dropped (%zu bytes queued)",
            (unsigned long long) c->id, queued);
        return AMONITOR_ERR_FULL;
    }

    if (queued + len > priv->max_send_queue * AMONITOR_CONN_HARD_FACTOR) {
        amonitor_log(priv, AMONITOR_LOG_WARN,
            "connection %llu: agent does not read, closing (%zu bytes "
            "queued)",
            (unsigned long long) c->id, queued);
        amonitor_conn_abort(priv, c);
        return AMONITOR_ERR_FULL;
    }

    hlen = amon_ws_write_header(hdr, 1, opcode, len, NULL);

    return amonitor_conn_queue(priv, c, hdr, hlen, p, len);
}


static int
amonitor_conn_append(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const unsigned char *p, size_t len)
{
    return amonitor_conn_queue(priv, c, NULL, 0, p, len);
}


/*
 * Append a header and a payload to the output queue in one piece and try
 * to write at once unless the socket is known to be full.
 */
static int
amonitor_conn_queue(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    const unsigned char *hdr, size_t hlen, const unsigned char *p, size_t len)
{
    if (c->fd == -1) {
        return AMONITOR_ERR_STATE;
    }

    if (c->out_pos && c->out_pos == c->out.len) {
        c->out_pos = 0;
        c->out.len = 0;

    } else if (c->out_pos > c->out.cap / 2) {
        memmove(c->out.data, c->out.data + c->out_pos, c->out.len - c->out_pos);
        c->out.len -= c->out_pos;
        c->out_pos = 0;
    }

    if (amon_buf_reserve(&c->out, hlen + len, (size_t) -1 / 2, NULL)
        != AMON_OK) {
        amonitor_log(priv, AMONITOR_LOG_ERROR, "connection %llu: out of memory",
            (unsigned long long) c->id);
        amonitor_conn_abort(priv, c);
        return AMONITOR_ERR_NOMEM;
    }

    if (hlen) {
        memcpy(c->out.data + c->out.len, hdr, hlen);
        c->out.len += hlen;
    }

    if (len) {
        memcpy(c->out.data + c->out.len, p, len);
        c->out.len += len;
    }

    if (!c->want_write) {
        amonitor_conn_write(priv, c);
    }

    return c->state == AMONITOR_CONN_DEAD ? AMONITOR_ERR_IO : AMONITOR_OK;
}


void
amonitor_conn_write(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    ssize_t  n;
    unsigned want;

    if (c->ssl && !c->tls_done) {
        if (amonitor_tls_handshake(priv, c) == -1) {
            amonitor_conn_abort(priv, c);
        }

        return;
    }

    while (c->out_pos < c->out.len) {
        n = c->ssl ? amonitor_tls_send(
                c, c->out.data + c->out_pos, c->out.len - c->out_pos)
                   : send(c->fd, c->out.data + c->out_pos,
                       c->out.len - c->out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }

            amonitor_log(priv, AMONITOR_LOG_INFO, "connection %llu: send(): %s",
                (unsigned long long) c->id, strerror(errno));
            amonitor_conn_abort(priv, c);
            return;
        }

        c->out_pos += (size_t) n;
    }

    want = c->out_pos < c->out.len;

    if (!want) {
        c->out_pos = 0;
        c->out.len = 0;

        if (c->out.cap > 65536) {
            amon_buf_free(&c->out, NULL);
        }

        if (c->state == AMONITOR_CONN_CLOSING) {
            if (c->close_after_flush) {
                amonitor_conn_abort(priv, c);
                return;
            }

            if (!c->write_shut) {
                /* our close frame is out: the peer sees EOF after it */
                c->write_shut = 1;
                amonitor_tls_shutdown(c);
                (void) shutdown(c->fd, SHUT_WR);
            }
        }
    }

    if (want != c->want_write) {
        c->want_write = want;
        if (amonitor_conn_events(priv, c) == -1) {
            amonitor_log(
                priv, AMONITOR_LOG_ERROR, "epoll_ctl(): %s", strerror(errno));
            amonitor_conn_abort(priv, c);
        }
    }
}


static int
amonitor_conn_events(amonitor_sdk_priv_t *priv, amonitor_conn_t *c)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (c->want_write ? EPOLLOUT : 0);
    ev.data.ptr = c;

    return epoll_ctl(priv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}


void
amonitor_conn_timer(amonitor_sdk_priv_t *priv, amonitor_conn_t *c, int64_t now)
{
    if (c->deadline && now >= c->deadline) {
        amonitor_log(priv, AMONITOR_LOG_INFO, "connection %llu: %s timed out",
            (unsigned long long) c->id,
            c->state == AMONITOR_CONN_HANDSHAKE ? "handshake" : "close");
        amonitor_conn_abort(priv, c);
        return;
    }

    if (c->state == AMONITOR_CONN_OPEN && c->next_heartbeat
        && now >= c->next_heartbeat) {
        (void) priv->on_heartbeat(priv, c);

        c->next_heartbeat += priv->heartbeat_ms;
        if (c->next_heartbeat <= now) {
            c->next_heartbeat = now + priv->heartbeat_ms;
        }
    }
}
