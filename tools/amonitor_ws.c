/*
 * Copyright (C) AMonitor authors
 *
 * The CLI's WebSocket client: connect with a deadline, the opening
 * handshake and the frame codec from the protocol core, masked sends,
 * message reassembly, pings answered, the close handshake.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amoncli.h"
#include "amon_ws_handshake.h"


#define AMONCLI_WS_RBUF 65536


static int amoncli_ws_dial(
    const char *host, unsigned port, int timeout_ms, char *err, size_t errlen);
static int amoncli_ws_wait(int fd, short events, int64_t deadline);
static int amoncli_ws_fill(
    amoncli_ws_t *ws, int64_t deadline, char *err, size_t errlen);
static int amoncli_ws_write_all(
    amoncli_ws_t *ws, const unsigned char *p, size_t len, int64_t deadline);
static void amoncli_ws_random(unsigned char *p, size_t len);


int
amoncli_ws_connect(amoncli_ws_t *ws, const char *url, const char *token,
    int timeout_ms, char *err, size_t errlen)
{
    int           rc, status;
    size_t        n, hlen;
    int64_t       deadline;
    amon_ws_url_t u;
    amon_str_t    bearer;
    const char   *reason;
    char          host[256];
    unsigned char rnd[16], key[AMON_WS_KEY_LEN], req[4096];

    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;

    if (amon_ws_url_parse((const unsigned char *) url, strlen(url), &u)
        != AMON_OK) {
        snprintf(err, errlen, "invalid URL \"%s\"", url);
        return -1;
    }

    if (u.tls) {
        snprintf(err, errlen, "wss:// is not supported by this client");
        return -1;
    }

    if (u.host.len == 0 || u.host.len >= sizeof(host)) {
        snprintf(err, errlen, "invalid host in \"%s\"", url);
        return -1;
    }

    /* "[::1]" is kept bracketed by the parser; getaddrinfo wants "::1" */
    if (u.host.data[0] == '[' && u.host.len > 2) {
        memcpy(host, u.host.data + 1, u.host.len - 2);
        host[u.host.len - 2] = '\0';

    } else {
        memcpy(host, u.host.data, u.host.len);
        host[u.host.len] = '\0';
    }

    deadline = amoncli_now_ms() + timeout_ms;

    ws->fd = amoncli_ws_dial(host, u.port, timeout_ms, err, errlen);
    if (ws->fd == -1) {
        return -1;
    }

    amoncli_ws_random(rnd, sizeof(rnd));
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

    ws->rcap = AMONCLI_WS_RBUF;
    ws->rbuf = malloc(ws->rcap);
    if (ws->rbuf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    for (;;) {
        rc = amon_ws_client_response(
            ws->rbuf, ws->rlen, key, &hlen, &status, &reason);

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

            } else if (status) {
                snprintf(err, errlen, "handshake refused: HTTP %d (%s)", status,
                    reason);

            } else {
                snprintf(err, errlen, "handshake failed: %s", reason);
            }
            goto failed;
        }

        if (rc != AMON_AGAIN) {
            snprintf(err, errlen, "handshake failed: %s", amon_strerror(rc));
            goto failed;
        }

        rc = amoncli_ws_fill(ws, deadline, err, errlen);
        if (rc <= 0) {
            if (rc == 0) {
                snprintf(err, errlen, "handshake timed out");
            }
            goto failed;
        }
    }

    /* frames right behind the response stay in the buffer */
    ws->rpos = hlen;

    amon_ws_parser_init(&ws->parser, 0, AMONCLI_MAX_MESSAGE);
    ws->parser.validate_utf8 = 1;

    return 0;

failed:

    close(ws->fd);
    ws->fd = -1;
    free(ws->rbuf);
    ws->rbuf = NULL;

    return -1;
}


static int
amoncli_ws_dial(
    const char *host, unsigned port, int timeout_ms, char *err, size_t errlen)
{
    int             fd, rc, soerr, one;
    char            service[16];
    int64_t         deadline;
    socklen_t       slen;
    struct addrinfo hints, *res, *ai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    snprintf(service, sizeof(service), "%u", port);

    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(
            err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }

    deadline = amoncli_now_ms() + timeout_ms;
    fd = -1;
    snprintf(err, errlen, "connect to %s:%u failed", host, port);

    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(
            ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1) {
            continue;
        }

        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }

        if (errno == EINPROGRESS) {
            rc = amoncli_ws_wait(fd, POLLOUT, deadline);
            if (rc > 0) {
                slen = sizeof(soerr);
                soerr = 0;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen);
                if (soerr == 0) {
                    break;
                }
                errno = soerr;
            }

            if (rc == 0) {
                snprintf(err, errlen, "connect to %s:%u timed out", host, port);
                close(fd);
                fd = -1;
                continue;
            }
        }

        snprintf(
            err, errlen, "connect to %s:%u: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }

    freeaddrinfo(res);

    if (fd != -1) {
        one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }

    return fd;
}


/* 1: ready, 0: deadline passed or interrupted, -1: error. */
static int
amoncli_ws_wait(int fd, short events, int64_t deadline)
{
    int           rc, t;
    int64_t       now;
    struct pollfd pfd;

    for (;;) {
        if (amoncli_interrupted) {
            return 0;
        }

        t = -1;
        if (deadline >= 0) {
            now = amoncli_now_ms();
            if (now >= deadline) {
                return 0;
            }
            t = (int) (deadline - now);
        }

        pfd.fd = fd;
        pfd.events = events;
        pfd.revents = 0;

        rc = poll(&pfd, 1, t);
        if (rc > 0) {
            return 1;
        }

        if (rc == -1 && errno != EINTR) {
            return -1;
        }
    }
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
        n = recv(ws->fd, ws->rbuf + ws->rlen, ws->rcap - ws->rlen, 0);

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

        rc = amoncli_ws_wait(ws->fd, POLLIN, deadline);
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
        n = send(ws->fd, p, len, MSG_NOSIGNAL);

        if (n > 0) {
            p += n;
            len -= (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (amoncli_ws_wait(ws->fd, POLLOUT, deadline) <= 0) {
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
    size_t        hlen;
    int64_t       deadline;
    unsigned char mask[4];

    if (ws->fd == -1 || ws->closed) {
        return -1;
    }

    amoncli_ws_random(mask, sizeof(mask));

    ws->out.len = 0;
    if (amon_buf_reserve(&ws->out, len + AMON_MAX_FRAME_HEADER,
            AMONCLI_MAX_MESSAGE + AMON_MAX_FRAME_HEADER, NULL)
        != AMON_OK) {
        return -1;
    }

    hlen = amon_ws_write_header(ws->out.data, 1, opcode, len, mask);
    amon_ws_mask_copy(ws->out.data + hlen, p, len, mask, 0);
    ws->out.len = hlen + len;

    deadline = timeout_ms < 0 ? -1 : amoncli_now_ms() + timeout_ms;

    return amoncli_ws_write_all(ws, ws->out.data, ws->out.len, deadline);
}


int
amoncli_ws_recv(amoncli_ws_t *ws, int timeout_ms, unsigned *opcode,
    const unsigned char **p, size_t *len, char *err, size_t errlen)
{
    int             rc;
    size_t          consumed;
    int64_t         deadline;
    amon_ws_event_t ev;

    if (ws->fd == -1 || ws->closed) {
        snprintf(err, errlen, "connection closed");
        return -1;
    }

    deadline = timeout_ms < 0 ? -1 : amoncli_now_ms() + timeout_ms;

    for (;;) {
        consumed = 0;
        rc = amon_ws_parse(&ws->parser, ws->rbuf + ws->rpos,
            ws->rlen - ws->rpos, &consumed, &ev);
        ws->rpos += consumed;

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

        case AMON_WS_EV_DATA:
            if (ev.first) {
                ws->msg.len = 0;
            }

            if (ev.len) {
                if (amon_buf_reserve(
                        &ws->msg, ev.len, AMONCLI_MAX_MESSAGE, NULL)
                    != AMON_OK) {
                    snprintf(err, errlen, "message too big");
                    amoncli_ws_close(ws, AMON_WS_CLOSE_TOO_BIG);
                    return -1;
                }

                memcpy(ws->msg.data + ws->msg.len, ev.data, ev.len);
                ws->msg.len += ev.len;
            }

            if (ev.last) {
                *opcode = ev.opcode;
                *p = ws->msg.data ? ws->msg.data : (const unsigned char *) "";
                *len = ws->msg.len;
                return 1;
            }
            break;

        case AMON_WS_EV_PING:
            amoncli_ws_send(ws, AMON_WS_OP_PONG, ev.data, ev.len, 1000);
            break;

        case AMON_WS_EV_CLOSE:
            ws->close_code = ev.close_code;
            snprintf(ws->close_reason, sizeof(ws->close_reason), "%.*s",
                (int) ev.len, (const char *) ev.data);
            snprintf(err, errlen, "connection closed by the server (%u%s%s)",
                (unsigned) ev.close_code, ev.len ? ": " : "", ws->close_reason);
            amoncli_ws_close(ws,
                ev.close_code == AMON_WS_CLOSE_NO_STATUS ? AMON_WS_CLOSE_NORMAL
                                                         : ev.close_code);
            return -1;

        default: break;
        }
    }
}


/* Send a close frame (once) and release everything. */
void
amoncli_ws_close(amoncli_ws_t *ws, uint16_t code)
{
    size_t        n;
    unsigned char frame[2 + 4 + AMON_MAX_CONTROL_PAYLOAD], mask[4];

    if (ws->fd != -1) {
        if (!ws->closed) {
            ws->closed = 1;
            amoncli_ws_random(mask, sizeof(mask));
            if (!amon_ws_close_code_valid(code)) {
                code = AMON_WS_CLOSE_NORMAL;
            }
            n = amon_ws_write_close(frame, sizeof(frame), code, NULL, mask);
            if (n) {
                amoncli_ws_write_all(ws, frame, n, amoncli_now_ms() + 1000);
            }
        }

        close(ws->fd);
        ws->fd = -1;
    }

    free(ws->rbuf);
    ws->rbuf = NULL;
    amon_buf_free(&ws->msg, NULL);
    amon_buf_free(&ws->out, NULL);
}


static void
amoncli_ws_random(unsigned char *p, size_t len)
{
    ssize_t n;

    while (len) {
        n = getrandom(p, len, 0);
        if (n <= 0) {
            if (n == -1 && errno == EINTR) {
                continue;
            }
            while (len) {
                *p++ = (unsigned char) rand();
                len--;
            }
            return;
        }
        p += n;
        len -= (size_t) n;
    }
}
