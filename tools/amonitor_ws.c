/*
 * Copyright (C) AMonitor authors
 *
 * The CLI's WebSocket client: a blocking connection with deadlines on
 * the POSIX helpers (dial, wait) and the protocol core (the opening
 * handshake, the session layer: reassembly, pongs, close replies); over
 * TLS for wss:// (amonitor_tls.c).
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amoncli.h"
#include "amon_ws_handshake.h"


#define AMONCLI_WS_RBUF 65536


static int amoncli_ws_fill(
    amoncli_ws_t *ws, int64_t deadline, char *err, size_t errlen);
static int amoncli_ws_write_all(
    amoncli_ws_t *ws, const unsigned char *p, size_t len, int64_t deadline);
static void amoncli_ws_mask(void *data, unsigned char *key, size_t len);
static int  amoncli_ws_response(amoncli_ws_t *ws, const unsigned char *key,
     const char *token, int64_t deadline, size_t *hlen, char *err,
     size_t errlen);
static int  amoncli_ws_why(amoncli_ws_t *ws, char *why, size_t len);
static int amoncli_ws_reply(amoncli_ws_t *ws, const amon_ws_session_event_t *ev,
    int rc, int64_t deadline, char *err, size_t errlen);


/*
 * The first line of a refusal's body, read with its header (the agent
 * writes both at once): 1 when there is one of printable text.
 */
static int
amoncli_ws_why(amoncli_ws_t *ws, char *why, size_t len)
{
    size_t         n;
    unsigned char *body, *end;

    end = ws->rbuf + ws->rlen;

    for (body = ws->rbuf; end - body >= 4; body++) {
        if (memcmp(body, "\r\n\r\n", 4) == 0) {
            break;
        }
    }

    if (end - body < 4) {
        return 0;
    }

    body += 4;

    for (n = 0; body + n < end && n + 1 < len; n++) {
        if (body[n] == '\n' || body[n] == '\r') {
            break;
        }

        if (body[n] < 0x20 || body[n] > 0x7e) {
            return 0;
        }

        why[n] = (char) body[n];
    }

    why[n] = '\0';

    return n > 0;
}


/* the agent's 101 (or why not); "hlen": the bytes of the response */
static int
amoncli_ws_response(amoncli_ws_t *ws, const unsigned char *key,
    const char *token, int64_t deadline, size_t *hlen, char *err, size_t errlen)
{
    int         rc, status;
    char        why[160];
    const char *reason;

    ws->rcap = AMONCLI_WS_RBUF;
    ws->rbuf = malloc(ws->rcap);
    if (ws->rbuf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    for (;;) {
        rc = amon_ws_client_response(
            ws->rbuf, ws->rlen, key, hlen, &status, &reason);

        if (rc == AMON_OK) {
            break;
        }

        if (rc == AMON_EHANDSHAKE) {
            if (status == 401) {
                /* amonitor_panel_token: say what to do about it */
                snprintf(err, errlen,
                    "handshake refused: HTTP 401: %s (--token TOKEN, "
                    "the location's amonitor_panel_token)",
                    token ? "the agent rejected the panel token"
                          : "the agent wants a panel token");

            } else if (status && amoncli_ws_why(ws, why, sizeof(why))) {
                /* the agent says why in a line of text (a 400's reason) */
                snprintf(
                    err, errlen, "handshake refused: HTTP %d: %s", status, why);

            } else if (status) {
                snprintf(err, errlen, "handshake refused: HTTP %d (%s)", status,
                    reason);

            } else {
                snprintf(err, errlen, "handshake failed: %s", reason);
            }
            return -1;
        }

        if (rc != AMON_AGAIN) {
            snprintf(err, errlen, "handshake failed: %s", amon_strerror(rc));
            return -1;
        }

        rc = amoncli_ws_fill(ws, deadline, err, errlen);
        if (rc <= 0) {
            if (rc == 0) {
                snprintf(err, errlen, "handshake timed out");
            }
            return -1;
        }
    }

    return 0;
}


int
amoncli_ws_connect(amoncli_ws_t *ws, const char *url, const char *token,
    const char *ca, int timeout_ms, char *err, size_t errlen)
{
    size_t        n, hlen;
    int64_t       deadline;
    amon_ws_url_t u;
    amon_str_t    bearer, hn;
    char          host[256];
    unsigned char rnd[16], key[AMON_WS_KEY_LEN], req[4096];

    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;

    /* every frame of ours masked with a fresh key */
    amon_ws_session_init(
        &ws->session, 1, AMONCLI_MAX_MESSAGE, NULL, amoncli_ws_mask, NULL);

    if (amon_ws_url_parse((const unsigned char *) url, strlen(url), &u)
        != AMON_OK) {
        snprintf(err, errlen, "invalid URL \"%s\"", url);
        return -1;
    }

    if (u.host.len == 0 || u.host.len >= sizeof(host)) {
        snprintf(err, errlen, "invalid host in \"%s\"", url);
        return -1;
    }

    /* "[::1]" is kept bracketed by the parser; getaddrinfo wants "::1" */
    hn = amon_ws_url_hostname(&u);
    memcpy(host, hn.data, hn.len);
    host[hn.len] = '\0';

    deadline = amon_posix_now_ms() + timeout_ms;

    ws->fd = amon_posix_dial(
        host, u.port, timeout_ms, &amoncli_interrupted, err, errlen);
    if (ws->fd == -1) {
        return -1;
    }

    if (u.tls
        && amoncli_tls_connect(ws, host, ca, deadline, err, errlen) != 0) {
        goto failed;
    }

    amon_posix_random(rnd, sizeof(rnd));
    amon_ws_make_key(rnd, key);

    bearer.data = (const unsigned char *) token;
    bearer.len = token ? strlen(token) : 0;

    n = amon_ws_client_request(
        req, sizeof(req), u.host_port, u.path, key, bearer);
    if (n == 0) {
        snprintf(err, errlen, "cannot build the upgrade request");
        goto failed;
    }

    if (amoncli_ws_write_all(ws, req, n, deadline) != 0) {
        snprintf(err, errlen, "sending the upgrade request: %s",
            errno ? strerror(errno) : "timed out");
        goto failed;
    }

    if (amoncli_ws_response(ws, key, token, deadline, &hlen, err, errlen)
        != 0) {
        goto failed;
    }

    /* frames right behind the response stay in the buffer */
    ws->rpos = hlen;

    return 0;

failed:

    amoncli_tls_close(ws);
    close(ws->fd);
    ws->fd = -1;
    free(ws->rbuf);
    ws->rbuf = NULL;

    return -1;
}


/* Read more bytes.  1: got some, 0: timeout/interrupted, -1: EOF/error. */
static int
amoncli_ws_fill(amoncli_ws_t *ws, int64_t deadline, char *err, size_t errlen)
{
    int     rc;
    ssize_t n;

    if (ws->rpos == ws->rlen) {
        ws->rpos = 0;
        ws->rlen = 0;

    } else if (ws->rpos && ws->rlen == ws->rcap) {
        memmove(ws->rbuf, ws->rbuf + ws->rpos, ws->rlen - ws->rpos);
        ws->rlen -= ws->rpos;
        ws->rpos = 0;
    }

    if (ws->rlen == ws->rcap) {
        snprintf(err, errlen, "response too large");
        return -1;
    }

    for (;;) {
        n = ws->ssl
            ? amoncli_tls_recv(ws, ws->rbuf + ws->rlen, ws->rcap - ws->rlen)
            : recv(ws->fd, ws->rbuf + ws->rlen, ws->rcap - ws->rlen, 0);

        if (n > 0) {
            ws->rlen += (size_t) n;
            return 1;
        }

        if (n == 0) {
            snprintf(err, errlen, "connection closed by the peer");
            return -1;
        }

        if (errno == EINTR) {
            if (amoncli_interrupted) {
                return 0;
            }
            continue;
        }

        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(err, errlen, "recv: %s", strerror(errno));
            return -1;
        }

        rc = amon_posix_wait(ws->fd, ws->ssl ? ws->tls_events : POLLIN,
            deadline, &amoncli_interrupted);
        if (rc <= 0) {
            if (rc < 0) {
                snprintf(err, errlen, "poll: %s", strerror(errno));
            }
            return rc;
        }
    }
}


static int
amoncli_ws_write_all(
    amoncli_ws_t *ws, const unsigned char *p, size_t len, int64_t deadline)
{
    ssize_t n;

    errno = 0;

    while (len) {
        n = ws->ssl ? amoncli_tls_send(ws, p, len)
                    : send(ws->fd, p, len, MSG_NOSIGNAL);

        if (n > 0) {
            p += n;
            len -= (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (amon_posix_wait(ws->fd, ws->ssl ? ws->tls_events : POLLOUT,
                    deadline, &amoncli_interrupted)
                <= 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    errno = 0;
                }
                return -1;
            }
            continue;
        }

        return -1;
    }

    return 0;
}


int
amoncli_ws_send(amoncli_ws_t *ws, unsigned opcode, const void *p, size_t len,
    int timeout_ms)
{
    int64_t deadline;

    if (ws->fd == -1 || ws->closed) {
        return -1;
    }

    ws->out.len = 0;
    if (amon_buf_reserve(&ws->out, len + AMON_MAX_FRAME_HEADER,
            AMONCLI_MAX_MESSAGE + AMON_MAX_FRAME_HEADER, NULL)
        != AMON_OK) {
        return -1;
    }

    ws->out.len = amon_ws_session_frame(
        &ws->session, ws->out.data, ws->out.cap, opcode, p, len);
    if (ws->out.len == 0) {
        return -1;
    }

    deadline = timeout_ms < 0 ? -1 : amon_posix_now_ms() + timeout_ms;

    return amoncli_ws_write_all(ws, ws->out.data, ws->out.len, deadline);
}


/*
 * Write what the session answers (a pong, the echo of a close, the close
 * of a fault) within a second and within the caller's deadline.  1: sent
 * or nothing more to do; 0: the caller's deadline came first; -1: the
 * server does not read (said in err).  A pong that was not written whole
 * leaves the stream broken, so the connection is closed either way.
 */
static int
amoncli_ws_reply(amoncli_ws_t *ws, const amon_ws_session_event_t *ev, int rc,
    int64_t deadline, char *err, size_t errlen)
{
    int64_t wdl;

    wdl = amon_posix_now_ms() + 1000;
    if (deadline >= 0 && deadline < wdl) {
        wdl = deadline;
    }

    if (amoncli_ws_write_all(ws, ev->reply, ev->reply_len, wdl) == 0 || rc < 0
        || ev->type == AMON_WS_SESSION_CLOSE) {
        return 1;
    }

    ws->closed = 1;

    if (deadline >= 0 && amon_posix_now_ms() >= deadline) {
        return 0;
    }

    snprintf(err, errlen,
        "the server does not read: a pong could not be sent within 1 s");

    return -1;
}


int
amoncli_ws_recv(amoncli_ws_t *ws, int timeout_ms, unsigned *opcode,
    const unsigned char **p, size_t *len, char *err, size_t errlen)
{
    int                     rc, sent;
    size_t                  consumed;
    int64_t                 deadline;
    amon_ws_session_event_t ev;

    if (ws->fd == -1 || ws->closed) {
        snprintf(err, errlen, "connection closed");
        return -1;
    }

    deadline = timeout_ms < 0 ? -1 : amon_posix_now_ms() + timeout_ms;

    for (;;) {
        rc = amon_ws_session_feed(&ws->session, ws->rbuf + ws->rpos,
            ws->rlen - ws->rpos, &consumed, &ev);
        ws->rpos += consumed;

        if (ev.reply_len) {
            sent = amoncli_ws_reply(ws, &ev, rc, deadline, err, errlen);
            if (sent != 1) {
                return sent;
            }
        }

        if (rc < 0) {
            snprintf(err, errlen, "protocol error from the server: %s",
                amon_strerror(rc));
            amoncli_ws_close(ws, amon_close_code(rc));
            return -1;
        }

        if (rc == AMON_AGAIN) {
            rc = amoncli_ws_fill(ws, deadline, err, errlen);
            if (rc <= 0) {
                if (rc < 0) {
                    ws->closed = 1;
                }
                return rc;
            }
            continue;
        }

        switch (ev.type) {

        case AMON_WS_SESSION_MESSAGE:
            *opcode = ev.opcode;
            *p = ev.data;
            *len = ev.len;
            return 1;

        case AMON_WS_SESSION_CLOSE:
            ws->close_code = ev.close_code;
            snprintf(ws->close_reason, sizeof(ws->close_reason), "%.*s",
                (int) ev.len, (const char *) ev.data);
            snprintf(err, errlen, "connection closed by the server (%u%s%s)",
                (unsigned) ev.close_code, ev.len ? ": " : "", ws->close_reason);
            amoncli_ws_close(ws, ev.close_code);
            return -1;

        default: /* pings are answered above, pongs need nothing */ break;
        }

        /* a server that sends only pings does not hold the caller past
         * its deadline */
        if (deadline >= 0 && amon_posix_now_ms() >= deadline) {
            return 0;
        }
    }
}


/* Send a close frame (once: the session knows) and release everything. */
void
amoncli_ws_close(amoncli_ws_t *ws, uint16_t code)
{
    size_t        n;
    unsigned char frame[AMON_WS_CONTROL_FRAME_MAX];

    if (ws->fd != -1) {
        if (!ws->closed) {
            ws->closed = 1;
            n = amon_ws_session_close(
                &ws->session, frame, sizeof(frame), code, NULL);
            if (n) {
                amoncli_ws_write_all(ws, frame, n, amon_posix_now_ms() + 1000);
            }
        }

        amoncli_tls_close(ws);
        close(ws->fd);
        ws->fd = -1;
    }

    free(ws->rbuf);
    ws->rbuf = NULL;
    amon_ws_session_free(&ws->session);
    amon_buf_free(&ws->out, NULL);
}


int
amoncli_ws_closed_to_reconnect(const amoncli_ws_t *ws)
{
    return ws->close_code == AMON_WS_CLOSE_RESTART
        || ws->close_code == AMON_WS_CLOSE_GOING_AWAY;
}


static void
amoncli_ws_mask(void *data, unsigned char *key, size_t len)
{
    amon_posix_random(key, len);
}
