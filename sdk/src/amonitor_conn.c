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
static int  amonitor_conn_request(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     size_t hlen, int *authorized);
static void amonitor_conn_reject(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    int status, const char *reason);
static void amonitor_conn_open(amonitor_sdk_priv_t *priv, amonitor_conn_t *c);
static void amonitor_conn_frames(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
    unsigned char *p, size_t len);
static int  amonitor_conn_append(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     const unsigned char *p, size_t len);
static int  amonitor_conn_queue(amonitor_sdk_priv_t *priv, amonitor_conn_t *c,
     const unsigned char *hdr, size_t hlen, const unsigned char *p, size_t len);
static int  amonitor_token_ok(amonitor_sdk_priv_t *priv, amon_str_t auth);
static amon_str_t amonitor_trim(const unsigned char *p, size_t len);


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
    c->deadline = amonitor_now_ms() + AMONITOR_HANDSHAKE_MS;

    amon_ws_parser_init(&c->parser, 1, priv->max_message);
    c->parser.validate_utf8 = 1;

    slen = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *) &ss, &slen) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
            unsigned char      *a = (unsigned char *) &sin->sin_addr;

            snprintf(c->peer, sizeof(c->peer), "%u.%u.%u.%u:%u", a[0], a[1],
                a[2], a[3], (unsigned) ntohs(sin->sin_port));

        } else {
            snprintf(c->peer, sizeof(c->peer), "[ipv6]:%u",
                (unsigned) ntohs(((struct sockaddr_in6 *) &ss)->sin6_port));
        }
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;

    if (epoll_ctl(priv->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        amonitor_log(
            priv, AMONITOR_LOG_ERROR, "epoll_ctl(): %s", strerror(errno));
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
    amon_buf_free(&c->msg, NULL);
    amon_buf_free(&c->out, NULL);
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
    ssize_t  n;
    unsigned rounds;

    for (rounds = 0; rounds < 4 && c->state != AMONITOR_CONN_DEAD; rounds++) {
        n = recv(c->fd, priv->rbuf, sizeof(priv->rbuf), 0);

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

        if (c->http_rejected) {
            continue; /* the error response is on its way: ignore input */
        }

        if (c->state == AMONITOR_CONN_HANDSHAKE) {
            if (amon_buf_reserve(
                    &c->in, (size_t) n, AMONITOR_HANDSHAKE_MAX, NULL)
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
    size_t         i, hlen, rest;
    int            authorized;
    unsigned char *p;

    p = c->in.data;
    hlen = 0;

    for (i = 3; i < c->in.len; i++) {
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n'
            && p[i - 3] == '\r') {
            hlen = i + 1;
            break;
        }
    }

    if (hlen == 0) {
        return; /* more to come */
    }

    if (amonitor_conn_request(priv, c, hlen, &authorized) != AMONITOR_OK) {
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
 * Parse the request head, check it with the core and answer 101 (or an
 * HTTP error).  "authorized" tells whether the token matched.
 */
static int
amonitor_conn_request(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, size_t hlen, int *authorized)
{
    int               status, nkeys;
    size_t            n;
    const char       *reason;
    unsigned char    *p, *last, *eol, *colon, *sp;
    amon_str_t        name, value, target, auth;
    amon_ws_request_t req;
    unsigned char     accept[AMON_WS_ACCEPT_LEN];
    char              resp[256];

    memset(&req, 0, sizeof(req));
    auth.data = NULL;
    auth.len = 0;
    nkeys = 0;

    p = c->in.data;
    last = p + hlen - 2; /* the final empty line's CRLF */

    /* request line: METHOD SP target SP HTTP/x.y CRLF */
    eol = memchr(p, '\r', (size_t) (last - p));
    if (eol == NULL || eol[1] != '\n') {
        amonitor_conn_reject(priv, c, 400, "bad request line");
        return AMONITOR_ERR_INVAL;
    }

    sp = memchr(p, ' ', (size_t) (eol - p));
    if (sp == NULL || sp == p) {
        amonitor_conn_reject(priv, c, 400, "bad request line");
        return AMONITOR_ERR_INVAL;
    }

    req.method.data = p;
    req.method.len = (size_t) (sp - p);

    p = sp + 1;
    sp = memchr(p, ' ', (size_t) (eol - p));
    if (sp == NULL || sp == p || eol - sp != 9
        || memcmp(sp + 1, "HTTP/1.", 7) != 0 || sp[8] < '0' || sp[8] > '9') {
        amonitor_conn_reject(priv, c, 400, "bad request line");
        return AMONITOR_ERR_INVAL;
    }

    target.data = p;
    target.len = (size_t) (sp - p);
    req.http_version = 1000 + (unsigned) (sp[8] - '0');

    /* header fields */
    for (p = eol + 2; p < last; p = eol + 2) {
        eol = memchr(p, '\r', (size_t) (last - p) + 1);
        if (eol == NULL || eol[1] != '\n') {
            amonitor_conn_reject(priv, c, 400, "bad header line");
            return AMONITOR_ERR_INVAL;
        }

        colon = memchr(p, ':', (size_t) (eol - p));
        if (colon == NULL || colon == p || *p == ' ' || *p == '\t') {
            amonitor_conn_reject(priv, c, 400, "bad header line");
            return AMONITOR_ERR_INVAL;
        }

        name.data = p;
        name.len = (size_t) (colon - p);
        value = amonitor_trim(colon + 1, (size_t) (eol - colon - 1));

        if (amon_str_eq_ci(name, "upgrade")) {
            req.upgrade = value;

        } else if (amon_str_eq_ci(name, "connection")) {
            req.connection = value;

        } else if (amon_str_eq_ci(name, "sec-websocket-key")) {
            req.key = value;
            nkeys++;

        } else if (amon_str_eq_ci(name, "sec-websocket-version")) {
            req.version = value;

        } else if (amon_str_eq_ci(name, "authorization")) {
            auth = value;
        }
    }

    if (nkeys > 1) {
        amonitor_conn_reject(priv, c, 400, "duplicate Sec-WebSocket-Key");
        return AMONITOR_ERR_INVAL;
    }

    status = amon_ws_server_check(&req, &reason);
    if (status != 0) {
        amonitor_conn_reject(priv, c, status, reason);
        return AMONITOR_ERR_INVAL;
    }

    if (priv->path) {
        sp = memchr(target.data, '?', target.len);
        n = sp ? (size_t) (sp - target.data) : target.len;

        if (n != strlen(priv->path)
            || memcmp(target.data, priv->path, n) != 0) {
            amonitor_conn_reject(priv, c, 404, "not found");
            return AMONITOR_ERR_INVAL;
        }
    }

    if (amon_ws_accept(req.key.data, req.key.len, accept) != AMON_OK) {
        amonitor_conn_reject(priv, c, 400, "bad Sec-WebSocket-Key");
        return AMONITOR_ERR_INVAL;
    }

    n = (size_t) snprintf(resp, sizeof(resp),
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %.*s\r\n\r\n",
        AMON_WS_ACCEPT_LEN, (char *) accept);

    *authorized = (priv->token == NULL) || amonitor_token_ok(priv, auth);

    return amonitor_conn_append(priv, c, (unsigned char *) resp, n);
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

    cred = amonitor_trim(auth.data + 7, auth.len - 7);
    tlen = strlen(priv->token);

    diff = (unsigned char) (cred.len != tlen);

    for (i = 0; i < tlen; i++) {
        diff |= (unsigned char) (priv->token[i]
            ^ (i < cred.len ? cred.data[i] : 0));
    }

    return diff == 0;
}


static amon_str_t
amonitor_trim(const unsigned char *p, size_t len)
{
    amon_str_t s;

    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }

    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }

    s.data = p;
    s.len = len;

    return s;
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
    c->deadline = amonitor_now_ms() + AMONITOR_CLOSING_MS;

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

    if (priv->register_url) {
        amonitor_msg_register(priv, c);
    }

    if (priv->heartbeat_ms && c->state == AMONITOR_CONN_OPEN) {
        amonitor_msg_heartbeat(priv, c);
        c->next_heartbeat = amonitor_now_ms() + priv->heartbeat_ms;
    }
}


static void
amonitor_conn_frames(
    amonitor_sdk_priv_t *priv, amonitor_conn_t *c, unsigned char *p, size_t len)
{
    int             rc;
    size_t          consumed;
    amon_ws_event_t ev;

    while (c->state == AMONITOR_CONN_OPEN
        || (c->state == AMONITOR_CONN_CLOSING && !c->close_received
            && !c->input_error)) {
        consumed = 0;
        rc = amon_ws_parse(&c->parser, p, len, &consumed, &ev);

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
            amonitor_conn_close(
                priv, c, amon_close_code(rc), amon_strerror(rc));
            return;
        }

        switch (ev.type) {

        case AMON_WS_EV_DATA:
            if (c->state != AMONITOR_CONN_OPEN) {
                break; /* data after our close is discarded */
            }

            if (ev.first) {
                c->msg.len = 0;
            }

            if (ev.len) {
                rc = amon_buf_reserve(&c->msg, ev.len, priv->max_message, NULL);
                if (rc != AMON_OK) {
                    amonitor_conn_close(
                        priv, c, amon_close_code(rc), amon_strerror(rc));
                    return;
                }

                memcpy(c->msg.data + c->msg.len, ev.data, ev.len);
                c->msg.len += ev.len;
            }

            if (ev.last) {
                amonitor_msg_dispatch(
                    priv, c, ev.opcode, c->msg.data, c->msg.len);
                c->msg.len = 0;

                /* do not keep a huge buffer for an idle connection */
                if (c->msg.cap > 65536) {
                    amon_buf_free(&c->msg, NULL);
                }
            }
            break;

        case AMON_WS_EV_PING:
            if (c->state == AMONITOR_CONN_OPEN) {
                amonitor_conn_send_frame(
                    priv, c, AMON_WS_OP_PONG, ev.data, ev.len, 0);
            }
            break;

        case AMON_WS_EV_CLOSE:
            c->close_received = 1;

            if (c->state == AMONITOR_CONN_OPEN) {
                /* echo the code, then hang up once it is written */
                amonitor_conn_close(priv, c,
                    ev.close_code == AMON_WS_CLOSE_NO_STATUS ? 0
                                                             : ev.close_code,
                    NULL);

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
    unsigned char frame[2 + 4 + AMON_MAX_CONTROL_PAYLOAD];

    if (c->state != AMONITOR_CONN_OPEN) {
        return;
    }

    n = amon_ws_write_close(frame, sizeof(frame), code, reason, NULL);

    c->state = AMONITOR_CONN_CLOSING;
    c->deadline = amonitor_now_ms() + AMONITOR_CLOSING_MS;
    c->next_heartbeat = 0;

    if (c->close_received) {
        c->close_after_flush = 1;
    }

    if (n == 0 || amonitor_conn_append(priv, c, frame, n) != AMONITOR_OK) {
        amonitor_conn_abort(priv, c);
    }
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

    while (c->out_pos < c->out.len) {
        n = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos,
            MSG_NOSIGNAL | MSG_DONTWAIT);

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
        amonitor_msg_heartbeat(priv, c);

        c->next_heartbeat += priv->heartbeat_ms;
        if (c->next_heartbeat <= now) {
            c->next_heartbeat = now + priv->heartbeat_ms;
        }
    }
}
